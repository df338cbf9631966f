//! API keys and the webhook signing secret: hashed at rest, shown once, rotated and revoked
//! with immediate effect, `last_used_at` kept.

use agora_client::types::ApiKey;
use agora_core::credential::hash_secret;
use reqwest::Method;

use crate::helpers::{Backend, TestApp, assert_error};

both_backends!(
    keys_are_stored_only_as_hashes,
    keys_list_by_prefix_and_record_use,
    rotation_stops_the_old_key_at_once,
    revoked_keys_stop_at_once,
    webhook_secret_rotates_and_is_shown_once,
);

async fn keys_are_stored_only_as_hashes(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Vault", &[]).await;
    let first = reg.api_key.unwrap();
    let second = agent.create_key(Some("ci")).await.unwrap();
    assert!(second.key.starts_with("ak_live_"));
    let dump = app.database_dump().await;
    assert!(!dump.is_empty());
    for key in [&first, &second.key] {
        assert!(!dump.contains(key.as_str()), "a plaintext key is in the database");
        assert!(dump.contains(&hash_secret(key)), "its hash is what is stored");
    }
    // Login tokens are stored the same way.
    app.client
        .register(&agora_client::types::RegisterRequest {
            account_type: agora_client::types::AccountType::Human,
            name: "Token Holder".into(),
            email: Some("holder@example.com".into()),
            password: Some("holder password".into()),
            description: None,
            skills: None,
            model_name: None,
        })
        .await
        .unwrap();
    let tokens = app.client.token("holder@example.com", "holder password").await.unwrap();
    let dump = app.database_dump().await;
    for token in [&tokens.access_token, &tokens.refresh_token] {
        assert!(!dump.contains(token.as_str()), "a plaintext token is in the database");
        assert!(dump.contains(&hash_secret(token)));
    }
    assert!(!dump.contains("holder password"), "passwords are hashed");
}

async fn keys_list_by_prefix_and_record_use(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Lister", &[]).await;
    let created = agent.create_key(Some("deploy")).await.unwrap();
    let keys: Vec<ApiKey> = agent.keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    let listed = app.send(reg.api_key.as_deref(), Method::GET, "/api/v1/me/keys", None).await;
    assert!(!listed.text.contains(&created.key), "the list never shows a key");
    assert!(!listed.text.contains(reg.api_key.as_deref().unwrap()));
    let deploy = keys.iter().find(|k| k.name == "deploy").unwrap();
    assert!(created.key.starts_with(&deploy.prefix));
    assert_eq!(deploy.prefix.len(), "ak_live_".len() + 6);

    // Using a key records when (off the request path, so wait for it).
    app.client.with_token(&created.key).me().await.unwrap();
    crate::helpers::eventually(5, "last_used_at to be recorded", || async {
        let keys = agent.keys().await.unwrap();
        keys.into_iter().find(|k| k.id == created.info.id).and_then(|k| k.last_used_at)
    })
    .await;

    let r = app
        .send(reg.api_key.as_deref(), Method::POST, "/api/v1/me/keys", Some(serde_json::json!({"name": ""})))
        .await;
    assert_eq!(crate::helpers::error_paths(&r), ["name"]);
}

async fn rotation_stops_the_old_key_at_once(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Rotator", &[]).await;
    let keys = agent.keys().await.unwrap();
    let rotated = agent.rotate_key(&keys[0].id).await.unwrap();
    assert_eq!(rotated.info.name, keys[0].name);
    assert_ne!(rotated.info.id, keys[0].id);

    let old = app.send(reg.api_key.as_deref(), Method::GET, "/api/v1/me", None).await;
    assert_error(&old, 401, "UNAUTHORIZED");
    let new = app.client.with_token(&rotated.key);
    assert_eq!(new.me().await.unwrap().id, reg.account.id);
    // The old key cannot be rotated again.
    assert_eq!(new.rotate_key(&keys[0].id).await.unwrap_err().status(), Some(404));
}

async fn revoked_keys_stop_at_once(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, agent) = app.agent("Revoker", &[]).await;
    let extra = agent.create_key(Some("temp")).await.unwrap();
    let temp = app.client.with_token(&extra.key);
    temp.me().await.unwrap();
    let revoked = agent.revoke_key(&extra.info.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(temp.me().await.unwrap_err().code(), Some("UNAUTHORIZED"));
    assert_eq!(agent.revoke_key(&extra.info.id).await.unwrap_err().status(), Some(404));
    assert_eq!(agent.revoke_key("key_bogus").await.unwrap_err().status(), Some(404));
    // Revoked keys stay listed, marked, after the live ones.
    let keys = agent.keys().await.unwrap();
    assert!(keys[0].revoked_at.is_none() && keys[1].revoked_at.is_some());
}

async fn webhook_secret_rotates_and_is_shown_once(b: Backend) {
    let app = TestApp::new(b).await;
    let (reg, agent) = app.agent("Hooked", &[]).await;
    let rotated = agent.rotate_webhook_secret().await.unwrap();
    assert!(rotated.webhook_secret.starts_with("whsec_"));
    assert_ne!(rotated.webhook_secret, reg.webhook_secret);
    let me = app.send(reg.api_key.as_deref(), Method::GET, "/api/v1/me", None).await;
    assert!(!me.text.contains("whsec_"), "the secret is not shown again");
}
