//! Accounts and credentials.

use std::sync::Arc;

use agora_core::{
    AccountId, ApiKeyId, SessionId, Timestamp,
    account::{AccountKind, Profile},
    credential::{SecretKind, hash_secret, mint},
};

use super::{insert, new_account, now};
use crate::{
    AgentQuery, AgentSort, Conflict, IdempotencyRecord, NewApiKey, NewSession, Sighting, Store, StoreError,
};

pub async fn accounts_round_trip(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let mut a = new_account(AccountKind::Agent, "Round Trip", Some("round@example.com"));
    a.profile = Profile::default()
        .apply(
            agora_core::account::ProfileInput {
                skills: Some(vec!["rust".into(), "sql".into()]),
                model_name: Some(Some("gpt-x".into())),
                max_concurrent_tasks: Some(4),
                ..Default::default()
            },
            agora_core::money::MaxAmount::default(),
        )
        .expect("profile");
    insert(store, &a).await;

    let got = store.read().account(&a.id).await.expect("read").expect("found");
    assert_eq!(got.name, "Round Trip");
    assert_eq!(got.kind, AccountKind::Agent);
    assert_eq!(got.profile, a.profile);
    assert_eq!(got.created_at, a.created_at);
    assert_eq!(got.banned_at, None);

    let (by_email, hash) =
        store.read().account_login(a.email.as_ref().expect("email")).await.expect("read").expect("found");
    assert_eq!(by_email.id, a.id);
    assert_eq!(hash.as_deref(), Some("$argon2id$fake"));

    let mut tx = store.begin().await.expect("begin");
    let locked = tx.account_for_update(&a.id).await.expect("lock").expect("found");
    let mut profile = locked.profile.clone();
    profile.description = "updated".into();
    tx.update_profile(&a.id, "Renamed", &profile, now()).await.expect("update");
    tx.commit().await.expect("commit");
    let got = store.read().account(&a.id).await.expect("read").expect("found");
    assert_eq!((got.name.as_str(), got.profile.description.as_str()), ("Renamed", "updated"));

    assert!(store.read().account(&AccountId::generate()).await.expect("read").is_none());
}

pub async fn emails_are_unique(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let a = new_account(AccountKind::Human, "First", Some("dup@example.com"));
    insert(store, &a).await;
    let b = new_account(AccountKind::Human, "Second", Some("DUP@example.com"));
    let mut tx = store.begin().await.expect("begin");
    match tx.insert_account(&b).await {
        Err(StoreError::Conflict(Conflict::Email)) => {}
        other => panic!("expected an email conflict, got {other:?}"),
    }
    drop(tx);
    // Accounts without email do not collide with each other.
    insert(store, &new_account(AccountKind::Agent, "No Mail 1", None)).await;
    insert(store, &new_account(AccountKind::Agent, "No Mail 2", None)).await;
}

pub async fn dropped_transaction_rolls_back(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let a = new_account(AccountKind::Human, "Ghost", Some("ghost@example.com"));
    let mut tx = store.begin().await.expect("begin");
    tx.insert_account(&a).await.expect("insert");
    drop(tx);
    assert!(
        store.read().account(&a.id).await.expect("read").is_none(),
        "an uncommitted account must not exist"
    );
}

pub async fn api_keys_are_found_by_hash_until_revoked(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let a = new_account(AccountKind::Agent, "Keyed", None);
    insert(store, &a).await;
    let minted = mint(SecretKind::ApiKey, [3; 32]);
    let key = NewApiKey {
        id: ApiKeyId::generate(),
        account_id: a.id.clone(),
        name: "default".into(),
        display_prefix: minted.display_prefix.clone(),
        key_hash: minted.hash.clone(),
        created_at: now(),
    };
    let mut tx = store.begin().await.expect("begin");
    tx.insert_api_key(&key).await.expect("insert key");
    tx.commit().await.expect("commit");

    let p =
        store.read().credential_by_key(&hash_secret(&minted.plaintext)).await.expect("read").expect("found");
    assert_eq!(p.account.id, a.id);
    assert_eq!(p.last_used_at, None);
    let mut tx = store.begin().await.expect("begin");
    tx.touch_api_keys(std::slice::from_ref(&key.id), now()).await.expect("touch");
    tx.commit().await.expect("commit");
    let p = store.read().credential_by_key(&minted.hash).await.expect("read").expect("found");
    assert!(p.last_used_at.is_some());

    let listed = store.read().api_keys(&a.id).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].display_prefix, minted.display_prefix);

    // Another account cannot revoke it.
    let other = AccountId::generate();
    let mut tx = store.begin().await.expect("begin");
    assert!(tx.revoke_api_key(&other, &key.id, now()).await.expect("revoke").is_none());
    let revoked = tx.revoke_api_key(&a.id, &key.id, now()).await.expect("revoke");
    assert!(revoked.is_some_and(|k| k.revoked_at.is_some()));
    assert!(tx.revoke_api_key(&a.id, &key.id, now()).await.expect("revoke").is_none(), "revoke is once");
    tx.commit().await.expect("commit");
    assert!(store.read().credential_by_key(&minted.hash).await.expect("read").is_none());
}

pub async fn refresh_tokens_are_taken_once(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let a = new_account(AccountKind::Human, "Session", Some("session@example.com"));
    insert(store, &a).await;
    let t = now();
    let s = NewSession {
        id: SessionId::generate(),
        account_id: a.id.clone(),
        access_hash: hash_secret("at_conformance"),
        refresh_hash: hash_secret("rt_conformance"),
        access_expires_at: t.plus_seconds(60),
        refresh_expires_at: t.plus_seconds(600),
        created_at: t,
    };
    let mut tx = store.begin().await.expect("begin");
    tx.insert_session(&s).await.expect("insert session");
    tx.commit().await.expect("commit");

    let p = store.read().credential_by_access_token(&s.access_hash, t).await.expect("read").expect("live");
    assert_eq!(p.account.id, a.id);
    assert!(
        store
            .read()
            .credential_by_access_token(&s.access_hash, t.plus_seconds(61))
            .await
            .expect("read")
            .is_none()
    );

    let mut tx = store.begin().await.expect("begin");
    assert_eq!(tx.take_refresh_token(&s.refresh_hash, t).await.expect("take"), Some(a.id.clone()));
    assert_eq!(tx.take_refresh_token(&s.refresh_hash, t).await.expect("take"), None);
    tx.commit().await.expect("commit");
    assert!(
        store.read().credential_by_access_token(&s.access_hash, t).await.expect("read").is_none(),
        "refresh revokes"
    );
}

pub async fn idempotency_records_conflict_while_live(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let a = new_account(AccountKind::Human, "Idem", Some("idem@example.com"));
    insert(store, &a).await;
    let t = now();
    let rec = IdempotencyRecord {
        account_id: a.id.clone(),
        key: "k-1".into(),
        request_hash: "h1".into(),
        status: 201,
        body: "{\"first\":true}".into(),
        created_at: t,
    };
    let window = 24 * 3600;
    let mut tx = store.begin().await.expect("begin");
    tx.insert_idempotency_record(&rec, t.plus_seconds(-window)).await.expect("first");
    tx.commit().await.expect("commit");
    assert_eq!(
        store.read().idempotency_record(&a.id, "k-1", t.plus_seconds(-window)).await.expect("read"),
        Some(rec.clone())
    );

    let mut tx = store.begin().await.expect("begin");
    let again = IdempotencyRecord { request_hash: "h2".into(), ..rec.clone() };
    match tx.insert_idempotency_record(&again, t.plus_seconds(-window)).await {
        Err(StoreError::Conflict(Conflict::IdempotencyKey)) => {}
        other => panic!("expected an idempotency conflict, got {other:?}"),
    }
    drop(tx);

    // A day later the key is free again.
    let later = t.plus_seconds(window + 1);
    assert!(
        store
            .read()
            .idempotency_record(&a.id, "k-1", later.plus_seconds(-window))
            .await
            .expect("read")
            .is_none()
    );
    let mut tx = store.begin().await.expect("begin");
    let fresh = IdempotencyRecord { created_at: later, ..again };
    tx.insert_idempotency_record(&fresh, later.plus_seconds(-window)).await.expect("expired record replaced");
    tx.commit().await.expect("commit");
}

pub async fn agent_directory_filters_sorts_and_pages(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let mut names = Vec::new();
    for (i, (name, skills)) in [
        ("Zeta Translator", vec!["dir-translation"]),
        ("alpha coder", vec!["dir-rust", "dir-rust-review"]),
        ("Beta 100% Coder", vec!["dir-rust"]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut a = new_account(AccountKind::Agent, name, None);
        a.created_at = Timestamp::from_millis(4_000_000_000_000 + i as i64);
        a.profile.skills = skills.into_iter().map(str::to_owned).collect();
        insert(store, &a).await;
        names.push(a.id);
    }
    let q = |skill: Option<&str>, text: Option<&str>, sort| AgentQuery {
        skill: skill.map(str::to_owned),
        text: text.map(str::to_owned),
        seen_since: None,
        sort,
        offset: 0,
        limit: 100,
    };
    let page = store.read().agents(&q(Some("dir-rust"), None, AgentSort::Name)).await.expect("list");
    let got: Vec<_> = page.items.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(got, ["alpha coder", "Beta 100% Coder"]);
    assert_eq!(page.total, 2);

    // A tag must not match a skill that merely contains it.
    let page = store.read().agents(&q(Some("dir-rust-rev"), None, AgentSort::Name)).await.expect("list");
    assert_eq!(page.total, 0);

    // Text search is case-insensitive, and LIKE wildcards in it are literal.
    let page = store.read().agents(&q(None, Some("CODER"), AgentSort::Name)).await.expect("list");
    assert_eq!(page.total, 2);
    let page = store.read().agents(&q(None, Some("100%"), AgentSort::Name)).await.expect("list");
    assert_eq!(page.items.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(), ["Beta 100% Coder"]);
    let page = store.read().agents(&q(None, Some("_"), AgentSort::Name)).await.expect("list");
    assert_eq!(page.total, 0);

    // Newest first, one per page.
    let mut query = q(Some("dir-rust"), None, AgentSort::Newest);
    query.limit = 1;
    let first = store.read().agents(&query).await.expect("list");
    assert_eq!(first.items.len(), 1);
    assert_eq!(first.items[0].name, "Beta 100% Coder");
    assert_eq!(first.total, 2);
    query.offset = 1;
    let second = store.read().agents(&query).await.expect("list");
    assert_eq!(second.items[0].name, "alpha coder");

    // Nobody has been seen yet, so nobody is online.
    let mut query = q(None, None, AgentSort::Newest);
    query.seen_since = Some(now().plus_seconds(-120));
    assert_eq!(store.read().agents(&query).await.expect("list").total, 0);
}

pub async fn bans_are_visible_to_authentication(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let a = new_account(AccountKind::Agent, "Banned Bot", None);
    insert(store, &a).await;
    let minted = mint(SecretKind::ApiKey, [9; 32]);
    let mut tx = store.begin().await.expect("begin");
    tx.insert_api_key(&NewApiKey {
        id: ApiKeyId::generate(),
        account_id: a.id.clone(),
        name: "k".into(),
        display_prefix: minted.display_prefix.clone(),
        key_hash: minted.hash.clone(),
        created_at: now(),
    })
    .await
    .expect("key");
    assert!(tx.set_banned(&a.id, Some(now()), now()).await.expect("ban"));
    assert!(!tx.set_banned(&AccountId::generate(), Some(now()), now()).await.expect("ban nobody"));
    tx.commit().await.expect("commit");
    let p = store.read().credential_by_key(&minted.hash).await.expect("read").expect("found");
    assert!(p.account.is_banned());
    let page = store
        .read()
        .agents(&AgentQuery { text: Some("banned bot".into()), limit: 10, ..Default::default() })
        .await
        .expect("list");
    assert_eq!(page.total, 0, "banned agents leave the directory");
}

/// A sign-off holds until the agent's next heartbeat: inbox polls (an old one still
/// waiting) do not end it.
pub async fn a_sign_off_holds_until_the_next_heartbeat(shared: Arc<dyn Store>) {
    let store = shared.as_ref();
    let a = new_account(AccountKind::Agent, "Signing Off", None);
    insert(store, &a).await;
    let seen = |s: Sighting| {
        let id = a.id.clone();
        async move {
            let mut tx = store.begin().await.expect("begin");
            tx.touch_presence(&id, now(), s).await.expect("touch");
            tx.commit().await.expect("commit");
            store.read().account(&id).await.expect("read").expect("agent")
        }
    };
    assert!(seen(Sighting::Heartbeat).await.is_online(now()));
    assert!(!seen(Sighting::SignOff).await.is_online(now()));
    assert!(!seen(Sighting::Poll).await.is_online(now()), "a poll does not end a sign-off");
    let back = seen(Sighting::Heartbeat).await;
    assert!(back.is_online(now()) && back.offline_at.is_none());
    assert!(seen(Sighting::Poll).await.is_online(now()), "polls keep an agent online");
}
