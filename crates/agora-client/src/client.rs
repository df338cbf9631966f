//! A typed client for the native API over HTTP.

use reqwest::{Method, header::HeaderMap};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::types::*;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered with an error envelope.
    #[error("{status} {code}: {message}")]
    Api { status: u16, code: String, message: String, details: Value },
    #[error("unexpected response ({status}): {body}")]
    Unexpected { status: u16, body: String },
}

impl ClientError {
    /// The envelope's error code, if the server sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            Self::Transport(e) => e.status().map(|s| s.as_u16()),
        }
    }
}

/// A whole response, for callers that look at statuses and headers themselves.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as JSON (`Value::Null` when empty or not JSON).
    pub json: Value,
    pub text: String,
}

impl Reply {
    /// The envelope's `data`, typed; an error envelope becomes `ClientError::Api`.
    pub fn data<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        if (200..300).contains(&self.status)
            && let Some(data) = self.json.get("data")
        {
            return serde_json::from_value(data.clone())
                .map_err(|e| ClientError::Unexpected { status: self.status, body: e.to_string() });
        }
        Err(self.error())
    }

    /// The error code of an error envelope.
    pub fn code(&self) -> Option<&str> {
        self.json.pointer("/error/code").and_then(Value::as_str)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn error(&self) -> ClientError {
        match (self.code(), self.json.pointer("/error/message").and_then(Value::as_str)) {
            (Some(code), Some(message)) => ClientError::Api {
                status: self.status,
                code: code.to_owned(),
                message: message.to_owned(),
                details: self.json.pointer("/error/details").cloned().unwrap_or(Value::Null),
            },
            _ => ClientError::Unexpected { status: self.status, body: self.text.clone() },
        }
    }
}

/// A client of one Agora server, optionally authenticated with a bearer token or API key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// `base` is the server's root URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: impl Into<String>) -> Self {
        Self { http: reqwest::Client::new(), base: base.into().trim_end_matches('/').to_owned(), token: None }
    }

    /// The same client, presenting `token` (an API key or access token).
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { token: Some(token.into()), ..self.clone() }
    }

    /// The same client (and token) against another server, e.g. another replica or the
    /// same server after a restart on a new port.
    pub fn rebase(&self, base: impl Into<String>) -> Self {
        Self { base: base.into().trim_end_matches('/').to_owned(), ..self.clone() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The token this client presents, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends any request; `path` is absolute from the server root (`/api/v1/me`).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, ClientError> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, headers, json, text })
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| ClientError::Unexpected { status: 0, body: e.to_string() })?;
        self.send(method, path, body.as_ref(), &[]).await?.data()
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&Value>).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ClientError> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::DELETE, path, None::<&Value>).await
    }

    // The native API, one method per endpoint.

    pub async fn register(&self, req: &RegisterRequest) -> Result<Registered, ClientError> {
        self.post("/api/v1/auth/register", req).await
    }

    pub async fn token(&self, email: &str, password: &str) -> Result<TokenPair, ClientError> {
        self.post("/api/v1/auth/token", &TokenRequest { email: email.into(), password: password.into() })
            .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ClientError> {
        self.post("/api/v1/auth/refresh", &RefreshRequest { refresh_token: refresh_token.into() }).await
    }

    pub async fn logout(&self) -> Result<Value, ClientError> {
        self.post("/api/v1/auth/logout", &Value::Null).await
    }

    pub async fn me(&self) -> Result<Account, ClientError> {
        self.get("/api/v1/me").await
    }

    pub async fn update_me(&self, req: &ProfileFields) -> Result<Account, ClientError> {
        self.patch("/api/v1/me", req).await
    }

    pub async fn keys(&self) -> Result<Vec<ApiKey>, ClientError> {
        self.get("/api/v1/me/keys").await
    }

    pub async fn create_key(&self, name: Option<&str>) -> Result<CreatedKey, ClientError> {
        self.post("/api/v1/me/keys", &CreateKeyRequest { name: name.map(str::to_owned) }).await
    }

    pub async fn rotate_key(&self, id: &str) -> Result<CreatedKey, ClientError> {
        self.post(&format!("/api/v1/me/keys/{id}/rotate"), &Value::Null).await
    }

    pub async fn revoke_key(&self, id: &str) -> Result<ApiKey, ClientError> {
        self.delete(&format!("/api/v1/me/keys/{id}")).await
    }

    pub async fn rotate_webhook_secret(&self) -> Result<WebhookSecret, ClientError> {
        self.post("/api/v1/me/webhook-secret/rotate", &Value::Null).await
    }

    pub async fn create_agent(&self, req: &ProfileFields) -> Result<CreatedAgent, ClientError> {
        self.post("/api/v1/agents", req).await
    }

    pub async fn agent(&self, id: &str) -> Result<Account, ClientError> {
        self.get(&format!("/api/v1/agents/{id}")).await
    }

    pub async fn ban(&self, account_id: &str, reason: Option<&str>) -> Result<Account, ClientError> {
        let body = BanRequest { reason: reason.map(str::to_owned) };
        self.post(&format!("/api/v1/admin/accounts/{account_id}/ban"), &body).await
    }

    pub async fn unban(&self, account_id: &str) -> Result<Account, ClientError> {
        self.post(&format!("/api/v1/admin/accounts/{account_id}/unban"), &Value::Null).await
    }

    pub async fn wallet(&self) -> Result<Wallet, ClientError> {
        self.get("/api/v1/wallet").await
    }

    pub async fn wallet_transactions(
        &self,
        page: u64,
        limit: u64,
    ) -> Result<Vec<StatementLine>, ClientError> {
        self.get(&format!("/api/v1/wallet/transactions?page={page}&limit={limit}")).await
    }

    pub async fn quota(&self) -> Result<Quota, ClientError> {
        self.get("/api/v1/quota").await
    }

    pub async fn top_up(&self, account_id: &str, req: &TopUpRequest) -> Result<LedgerReceipt, ClientError> {
        self.post(&format!("/api/v1/admin/accounts/{account_id}/top-up"), req).await
    }

    pub async fn adjust(&self, account_id: &str, req: &AdjustRequest) -> Result<LedgerReceipt, ClientError> {
        self.post(&format!("/api/v1/admin/accounts/{account_id}/adjust"), req).await
    }

    pub async fn grant_quota(&self, account_id: &str, req: &GrantQuotaRequest) -> Result<Quota, ClientError> {
        self.post(&format!("/api/v1/admin/accounts/{account_id}/quota"), req).await
    }

    pub async fn revenue(&self) -> Result<Revenue, ClientError> {
        self.get("/api/v1/admin/revenue").await
    }

    pub async fn ledger_audit(&self) -> Result<LedgerAudit, ClientError> {
        self.get("/api/v1/admin/ledger/audit").await
    }

    // The agent protocol.

    pub async fn heartbeat(&self, offline: bool) -> Result<Heartbeat, ClientError> {
        let req = HeartbeatRequest { status: offline.then(|| "offline".to_owned()) };
        self.post("/api/v1/agent/heartbeat", &req).await
    }

    /// Waits up to `wait` seconds for the next task and claims it.
    pub async fn inbox(&self, wait: u64) -> Result<Option<Task>, ClientError> {
        self.get::<Inbox>(&format!("/api/v1/agent/inbox?wait={wait}")).await.map(|i| i.task)
    }

    pub async fn progress(&self, task_id: &str, req: &ProgressRequest) -> Result<TaskResult, ClientError> {
        self.post(&format!("/api/v1/tasks/{task_id}/progress"), req).await
    }

    pub async fn message(&self, task_id: &str, body: &str) -> Result<TaskMessage, ClientError> {
        self.post(&format!("/api/v1/tasks/{task_id}/messages"), &MessageRequest { body: body.to_owned() })
            .await
    }

    pub async fn deliver(&self, task_id: &str, req: &DeliverRequest) -> Result<TaskResult, ClientError> {
        self.post(&format!("/api/v1/tasks/{task_id}/deliver"), req).await
    }

    pub async fn fail(&self, task_id: &str, error: &str) -> Result<TaskResult, ClientError> {
        self.post(&format!("/api/v1/tasks/{task_id}/fail"), &FailRequest { error: error.to_owned() }).await
    }

    // Tasks, as their requester.

    pub async fn task(&self, task_id: &str) -> Result<Task, ClientError> {
        self.get(&format!("/api/v1/tasks/{task_id}")).await
    }

    /// `query` is the query string without `?`, e.g. `role=worker&status=queued`.
    pub async fn tasks(&self, query: &str) -> Result<Vec<Task>, ClientError> {
        self.get(&format!("/api/v1/tasks?{query}")).await
    }

    pub async fn accept(&self, task_id: &str) -> Result<TaskResult, ClientError> {
        self.post(&format!("/api/v1/tasks/{task_id}/accept"), &serde_json::json!({})).await
    }

    pub async fn request_revision(
        &self,
        task_id: &str,
        feedback: Option<&str>,
    ) -> Result<TaskResult, ClientError> {
        let req = RevisionRequest { feedback: feedback.map(str::to_owned) };
        self.post(&format!("/api/v1/tasks/{task_id}/revision"), &req).await
    }

    /// Refuses delivered work whose worker has been banned: the task fails, the escrow is
    /// refunded.
    pub async fn reject(&self, task_id: &str) -> Result<TaskResult, ClientError> {
        self.post(&format!("/api/v1/tasks/{task_id}/reject"), &serde_json::json!({})).await
    }

    pub async fn cancel(&self, task_id: &str) -> Result<TaskResult, ClientError> {
        self.post(&format!("/api/v1/tasks/{task_id}/cancel"), &serde_json::json!({})).await
    }

    // Chats.

    pub async fn start_chat(&self, agent_id: &str, message: &str) -> Result<Accepted, ClientError> {
        self.post(&format!("/api/v1/agents/{agent_id}/chats"), &ChatRequest { message: message.to_owned() })
            .await
    }

    pub async fn chat_message(&self, chat_id: &str, message: &str) -> Result<Accepted, ClientError> {
        self.post(&format!("/api/v1/chats/{chat_id}/messages"), &ChatRequest { message: message.to_owned() })
            .await
    }

    // Services.

    pub async fn create_service(&self, req: &ServiceRequest) -> Result<Service, ClientError> {
        self.post("/api/v1/services", req).await
    }

    pub async fn update_service(&self, id: &str, req: &ServiceRequest) -> Result<Service, ClientError> {
        self.patch(&format!("/api/v1/services/{id}"), req).await
    }

    pub async fn service(&self, id: &str) -> Result<Service, ClientError> {
        self.get(&format!("/api/v1/services/{id}")).await
    }

    /// `query` is the query string without `?`.
    pub async fn services(&self, query: &str) -> Result<Vec<Service>, ClientError> {
        self.get(&format!("/api/v1/services?{query}")).await
    }

    pub async fn run_service(&self, id: &str, input: &Value) -> Result<Accepted, ClientError> {
        self.post(&format!("/api/v1/services/{id}/run"), &RunRequest { input_data: input.clone() }).await
    }

    // Bounties.

    pub async fn post_bounty(&self, req: &BountyRequest) -> Result<Task, ClientError> {
        self.post("/api/v1/bounties", req).await
    }

    pub async fn claim_bounty(&self, id: &str) -> Result<Task, ClientError> {
        self.post(&format!("/api/v1/bounties/{id}/claim"), &serde_json::json!({})).await
    }

    pub async fn cancel_bounty(&self, id: &str) -> Result<TaskResult, ClientError> {
        self.post(&format!("/api/v1/bounties/{id}/cancel"), &serde_json::json!({})).await
    }

    // Webhooks and notifications.

    pub async fn create_webhook(&self, req: &WebhookRequest) -> Result<WebhookWithSecret, ClientError> {
        self.post("/api/v1/webhooks", req).await
    }

    pub async fn webhooks(&self) -> Result<Vec<Webhook>, ClientError> {
        self.get("/api/v1/webhooks").await
    }

    pub async fn update_webhook(&self, id: &str, req: &WebhookPatch) -> Result<Webhook, ClientError> {
        self.patch(&format!("/api/v1/webhooks/{id}"), req).await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<Webhook, ClientError> {
        self.delete(&format!("/api/v1/webhooks/{id}")).await
    }

    pub async fn ping_webhook(&self, id: &str) -> Result<PingResult, ClientError> {
        self.post(&format!("/api/v1/webhooks/{id}/ping"), &Value::Null).await
    }

    pub async fn rotate_endpoint_secret(&self, id: &str) -> Result<WebhookWithSecret, ClientError> {
        self.post(&format!("/api/v1/webhooks/{id}/rotate-secret"), &Value::Null).await
    }

    /// `query` is the query string without `?`.
    pub async fn webhook_deliveries(
        &self,
        id: &str,
        query: &str,
    ) -> Result<Vec<WebhookDelivery>, ClientError> {
        self.get(&format!("/api/v1/webhooks/{id}/deliveries?{query}")).await
    }

    pub async fn redeliver(&self, delivery_id: &str) -> Result<WebhookDelivery, ClientError> {
        self.post(&format!("/api/v1/webhooks/deliveries/{delivery_id}/redeliver"), &Value::Null).await
    }

    pub async fn notifications(&self, unread_only: bool) -> Result<NotificationList, ClientError> {
        self.get(&format!("/api/v1/notifications?unread_only={unread_only}&limit=100")).await
    }

    pub async fn mark_notification_read(&self, id: &str) -> Result<MarkedRead, ClientError> {
        self.post(&format!("/api/v1/notifications/{id}/read"), &Value::Null).await
    }

    pub async fn mark_all_notifications_read(&self) -> Result<MarkedRead, ClientError> {
        self.post("/api/v1/notifications/read-all", &Value::Null).await
    }
}
