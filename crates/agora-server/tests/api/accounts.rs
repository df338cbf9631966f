//! Registration, login, sessions, profiles, the agent directory, bans and object-level
//! authorization.

use agora_client::types::{Account, AccountType, ProfileFields, RegisterRequest, TokenPair};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, assert_error, error_paths};

both_backends!(
    humans_register_log_in_and_read_themselves,
    agents_self_register_with_a_key,
    emails_are_unique_whatever_their_case,
    wrong_or_unknown_credentials_are_401,
    refresh_tokens_work_once_and_retire_the_old_session,
    concurrent_refreshes_have_one_winner,
    logout_ends_the_session,
    registration_reports_every_bad_field,
    profiles_update_and_show_publicly_without_private_fields,
    owners_create_agents_and_the_directory_lists_them,
    banned_accounts_get_403_on_every_call,
    only_admins_ban,
    others_objects_are_404,
);

fn register_req(
    kind: AccountType,
    name: &str,
    email: Option<&str>,
    password: Option<&str>,
) -> RegisterRequest {
    RegisterRequest {
        account_type: kind,
        name: name.to_owned(),
        email: email.map(str::to_owned),
        password: password.map(str::to_owned),
        description: None,
        skills: None,
        model_name: None,
    }
}

async fn humans_register_log_in_and_read_themselves(b: Backend) {
    let app = TestApp::new(b).await;
    let reply = app
        .send(
            None,
            Method::POST,
            "/api/v1/auth/register",
            Some(json!({"account_type": "human", "name": "Ann", "email": "Ann@Example.com", "password": "correct horse"})),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.json["success"], true);
    let account = &reply.json["data"]["account"];
    assert!(account["id"].as_str().unwrap().starts_with("acct_"));
    assert_eq!(account["email"], "ann@example.com");
    assert_eq!(reply.json["data"]["api_key"], serde_json::Value::Null, "humans log in instead");
    assert!(reply.json["data"]["webhook_secret"].as_str().unwrap().starts_with("whsec_"));

    let tokens: TokenPair = app.client.token("ann@example.com", "correct horse").await.unwrap();
    assert_eq!(tokens.token_type, "Bearer");
    assert_eq!(tokens.expires_in, 3600);
    let me = app.client.with_token(&tokens.access_token).me().await.unwrap();
    assert_eq!(me.id, account["id"].as_str().unwrap());
    assert_eq!(me.role.as_deref(), Some("user"));
    assert_eq!(me.account_type, AccountType::Human);
}

async fn agents_self_register_with_a_key(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Scribe", &["writing", "Translation"]).await;
    let key = reg.api_key.clone().unwrap();
    assert!(key.starts_with("ak_live_"));
    let me = agent.me().await.unwrap();
    assert_eq!(me.account_type, AccountType::Agent);
    assert_eq!(me.skills, ["writing", "translation"]);
    assert_eq!(me.owner_id, None);
}

async fn emails_are_unique_whatever_their_case(b: Backend) {
    let app = TestApp::new(b).await;
    let req = register_req(AccountType::Human, "Bo", Some("bo@example.com"), Some("password one"));
    app.client.register(&req).await.unwrap();
    let again = app
        .send(
            None,
            Method::POST,
            "/api/v1/auth/register",
            Some(json!({"account_type": "human", "name": "Bo 2", "email": "BO@example.com", "password": "password two"})),
        )
        .await;
    assert_error(&again, 409, "EMAIL_TAKEN");
}

async fn wrong_or_unknown_credentials_are_401(b: Backend) {
    let app = TestApp::new(b).await;
    app.client
        .register(&register_req(AccountType::Human, "Cy", Some("cy@example.com"), Some("right password")))
        .await
        .unwrap();
    for (email, password) in [
        ("cy@example.com", "wrong password"),
        ("nobody@example.com", "right password"),
        ("not an email", "x"),
    ] {
        let r = app
            .send(
                None,
                Method::POST,
                "/api/v1/auth/token",
                Some(json!({"email": email, "password": password})),
            )
            .await;
        assert_error(&r, 401, "INVALID_CREDENTIALS");
    }
    for token in ["ak_live_made_up", "at_made_up", "rt_refresh_is_not_a_bearer", "garbage"] {
        let r = app.send(Some(token), Method::GET, "/api/v1/me", None).await;
        assert_error(&r, 401, "UNAUTHORIZED");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = app.send(None, Method::GET, "/api/v1/me", None).await;
    assert_error(&r, 401, "UNAUTHORIZED");
}

async fn refresh_tokens_work_once_and_retire_the_old_session(b: Backend) {
    let app = TestApp::new(b).await;
    app.client
        .register(&register_req(AccountType::Human, "Di", Some("di@example.com"), Some("di password")))
        .await
        .unwrap();
    let first = app.client.token("di@example.com", "di password").await.unwrap();
    let second = app.client.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(first.access_token, second.access_token);
    app.client.with_token(&second.access_token).me().await.unwrap();

    let old = app.send(Some(&first.access_token), Method::GET, "/api/v1/me", None).await;
    assert_error(&old, 401, "UNAUTHORIZED");
    let reused = app
        .send(None, Method::POST, "/api/v1/auth/refresh", Some(json!({"refresh_token": first.refresh_token})))
        .await;
    assert_error(&reused, 401, "INVALID_CREDENTIALS");
}

async fn concurrent_refreshes_have_one_winner(b: Backend) {
    let app = TestApp::new(b).await;
    app.client
        .register(&register_req(AccountType::Human, "Fay", Some("fay@example.com"), Some("fay password")))
        .await
        .unwrap();
    let tokens = app.client.token("fay@example.com", "fay password").await.unwrap();
    let mut racers = Vec::new();
    for _ in 0..10 {
        let (client, refresh) = (app.client.clone(), tokens.refresh_token.clone());
        racers.push(tokio::spawn(async move { client.refresh(&refresh).await }));
    }
    let mut winners = 0;
    for r in racers {
        match r.await.unwrap() {
            Ok(_) => winners += 1,
            Err(e) => assert_eq!(e.code(), Some("INVALID_CREDENTIALS")),
        }
    }
    assert_eq!(winners, 1, "a refresh token is spent exactly once");
}

async fn logout_ends_the_session(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, human) = app.human("Eve").await;
    human.logout().await.unwrap();
    assert_eq!(human.me().await.unwrap_err().code(), Some("UNAUTHORIZED"));

    let (reg, _) = app.agent("Keyed", &[]).await;
    let r = app.send(reg.api_key.as_deref(), Method::POST, "/api/v1/auth/logout", None).await;
    assert_error(&r, 400, "NOT_A_SESSION");
}

async fn registration_reports_every_bad_field(b: Backend) {
    let app = TestApp::new(b).await;
    let r = app
        .send(
            None,
            Method::POST,
            "/api/v1/auth/register",
            Some(json!({"account_type": "human", "name": "", "password": "short", "skills": ["ok", "Not OK!"]})),
        )
        .await;
    let mut paths = error_paths(&r);
    paths.sort();
    assert_eq!(paths, ["email", "name", "password", "skills[1]"]);

    let r = app
        .send(
            None,
            Method::POST,
            "/api/v1/auth/register",
            Some(json!({"account_type": "robot", "name": "R"})),
        )
        .await;
    assert_eq!(error_paths(&r), ["account_type"]);
}

async fn profiles_update_and_show_publicly_without_private_fields(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Painter", &[]).await;
    let updated: Account = agent
        .patch(
            "/api/v1/me",
            &json!({
                "description": "Paints in oils",
                "skills": ["art", "oil-painting"],
                "model_name": "painter-1",
                "pricing": {"currency": "PTS", "chat_first_message": 10, "chat_subsequent_message": 2, "per_task": 50},
                "max_concurrent_tasks": 3,
                "wallet_address": "0xabc",
                "portfolio": [{"title": "Sunset", "url": "https://example.com/s.png", "kind": "image"}]
            }),
        )
        .await
        .unwrap();
    assert_eq!(updated.description, "Paints in oils");
    assert_eq!(updated.pricing.per_task, Some(50));
    assert_eq!(updated.max_concurrent_tasks, 3);
    assert_eq!(updated.wallet_address.as_deref(), Some("0xabc"));
    assert_eq!(updated.portfolio[0].kind, "image");

    // A later edit keeps what it does not mention, and null clears.
    let again: Account =
        agent.patch("/api/v1/me", &json!({"name": "Oil Painter", "model_name": null})).await.unwrap();
    assert_eq!(again.name, "Oil Painter");
    assert_eq!(again.model_name, None);
    assert_eq!(again.skills, ["art", "oil-painting"]);

    let public = app.client.agent(&reg.account.id).await.unwrap();
    assert_eq!(public.name, "Oil Painter");
    assert_eq!(public.pricing.per_task, Some(50));
    assert_eq!((public.email, public.wallet_address, public.role), (None, None, None));
    let raw = app.send(None, Method::GET, &format!("/api/v1/agents/{}", reg.account.id), None).await;
    assert!(!raw.text.contains("whsec_") && !raw.text.contains("0xabc"), "{}", raw.text);
}

async fn owners_create_agents_and_the_directory_lists_them(b: Backend) {
    let app = TestApp::new(b).await;
    let (owner, human) = app.human("Owner").await;
    let created = human
        .create_agent(&ProfileFields {
            name: Some("Owned Bot".into()),
            skills: Some(vec!["rust".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.agent.owner_id.as_deref(), Some(owner.account.id.as_str()));
    let bot = app.client.with_token(&created.api_key);
    assert_eq!(bot.me().await.unwrap().id, created.agent.id);

    app.agent("Free Bot", &["python"]).await;
    let r = app.send(None, Method::GET, "/api/v1/agents?skill=rust", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json["pagination"]["total"], 1);
    assert_eq!(r.json["data"][0]["name"], "Owned Bot");
    let r = app.send(None, Method::GET, "/api/v1/agents?q=bot&sort=name", None).await;
    let names: Vec<_> =
        r.json["data"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Free Bot", "Owned Bot"]);
    // Nobody has sent a heartbeat, so nobody is online.
    let r = app.send(None, Method::GET, "/api/v1/agents?online=true", None).await;
    assert_eq!(r.json["pagination"]["total"], 0);

    let r = app.send(None, Method::GET, "/api/v1/agents?sort=best", None).await;
    assert_eq!(error_paths(&r), ["sort"]);
    let r = app.send(None, Method::GET, "/api/v1/agents?colour=red", None).await;
    assert_error(&r, 422, "VALIDATION_ERROR");

    let missing_name = human.send(Method::POST, "/api/v1/agents", Some(&json!({})), &[]).await.unwrap();
    assert_eq!(error_paths(&missing_name), ["name"]);
}

async fn banned_accounts_get_403_on_every_call(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.admin().await;
    let (reg, agent) = app.agent("Spammer", &[]).await;
    let (human_reg, human) = app.human("Mallory").await;

    let banned = admin.ban(&reg.account.id, Some("spam")).await.unwrap();
    assert!(banned.banned_at.is_some());
    admin.ban(&human_reg.account.id, None).await.unwrap();

    for (method, path) in
        [(Method::GET, "/api/v1/me"), (Method::GET, "/api/v1/agents"), (Method::POST, "/api/v1/me/keys")]
    {
        let r = app.send(reg.api_key.as_deref(), method, path, Some(json!({}))).await;
        assert_error(&r, 403, "ACCOUNT_BANNED");
    }
    assert_eq!(human.me().await.unwrap_err().code(), Some("ACCOUNT_BANNED"));
    let login = app
        .send(
            None,
            Method::POST,
            "/api/v1/auth/token",
            Some(json!({"email": human_reg.account.email, "password": "correct horse battery"})),
        )
        .await;
    assert_error(&login, 403, "ACCOUNT_BANNED");
    // A banned agent leaves the public directory.
    let r = app.send(None, Method::GET, &format!("/api/v1/agents/{}", reg.account.id), None).await;
    assert_error(&r, 404, "NOT_FOUND");

    admin.unban(&reg.account.id).await.unwrap();
    assert_eq!(agent.me().await.unwrap().id, reg.account.id);
}

async fn only_admins_ban(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Would-be Admin", &[]).await;
    let (victim, _) = app.agent("Victim", &[]).await;
    let r = agent.ban(&victim.account.id, None).await.unwrap_err();
    assert_eq!((r.status(), r.code()), (Some(403), Some("FORBIDDEN")));

    let admin = app.admin().await;
    let admin_id = admin.me().await.unwrap().id;
    let r = admin.ban(&admin_id, None).await.unwrap_err();
    assert_eq!(r.code(), Some("CANNOT_BAN_SELF"));
    let r = admin.ban("acct_00000000000000000000000000", None).await.unwrap_err();
    assert_eq!((r.status(), r.code()), (Some(404), Some("NOT_FOUND")));
    let r = admin.ban("not-an-id", None).await.unwrap_err();
    assert_eq!(r.status(), Some(404));
    assert!(agent.me().await.is_ok(), "{}", reg.account.id);
}

async fn others_objects_are_404(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, alice) = app.agent("Alice", &[]).await;
    let (_, bob) = app.agent("Bob", &[]).await;
    let bobs_key = bob.create_key(Some("second")).await.unwrap();

    // Alice cannot revoke or rotate Bob's key, and cannot even tell that it exists.
    for r in
        [alice.revoke_key(&bobs_key.info.id).await, alice.rotate_key(&bobs_key.info.id).await.map(|k| k.info)]
    {
        let e = r.unwrap_err();
        assert_eq!((e.status(), e.code()), (Some(404), Some("NOT_FOUND")));
    }
    assert!(app.client.with_token(&bobs_key.key).me().await.is_ok(), "Bob's key still works");

    // Humans are not in the agent directory.
    let (human, _) = app.human("Hidden Human").await;
    let r = app.send(None, Method::GET, &format!("/api/v1/agents/{}", human.account.id), None).await;
    assert_error(&r, 404, "NOT_FOUND");
}
