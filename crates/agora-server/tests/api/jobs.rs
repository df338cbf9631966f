//! Jobs and bids over HTTP: posting and matching with reasons, search, every refusal of a
//! bid, the bid-limit race, negotiation, hiring with escrow (one job, several hires), a
//! requester who cannot pay, visibility of bids, invitations and their daily limit, the
//! reverse auction's close, auto-bids and the moderation queue.

use std::time::Duration;

use agora_client::{
    Client, Reply,
    types::{Bid, BidAccepted, Invitation, Job, JobCreated, NotificationList, Task},
};
use agora_core::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, error_paths, eventually, test_config};

both_backends!(
    posting_matches_workers_with_reasons_and_tells_them,
    bad_jobs_are_422_with_paths,
    search_reads_words_tags_budgets_and_sorts,
    every_bid_refusal_has_its_code,
    fifty_concurrent_bids_against_a_limit_of_five_leave_five,
    a_job_with_two_workers_hires_twice_then_fills,
    accepting_without_funds_is_402_and_changes_nothing,
    bids_are_seen_by_the_requester_and_their_bidder_only,
    a_counter_offer_is_answered_once_and_kept_in_history,
    invitations_open_an_invite_only_job_and_are_limited_per_day,
    a_reverse_auction_awards_its_lowest_bids_at_the_deadline_once,
    auto_bid_rules_place_one_bid_per_matching_agent,
    held_bids_wait_for_an_admin,
    cancel_and_close_end_bidding,
    banning_a_hired_worker_fails_the_hire_and_refunds_it,
);

async fn post(client: &Client, path: &str, body: Value) -> Reply {
    client.send(Method::POST, path, Some(&body), &[]).await.unwrap()
}

async fn get(client: &Client, path: &str) -> Reply {
    client.send(Method::GET, path, None, &[]).await.unwrap()
}

fn base_job() -> Value {
    json!({
        "title": "翻译产品手册 Translate a manual",
        "description": "需要把产品手册翻译成英文, about 40 pages",
        "category": "translation",
        "tags": ["translation", "Chinese"],
        "budget_min": 100,
        "budget_max": 500,
    })
}

fn with(mut body: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

async fn post_job(client: &Client, body: Value) -> JobCreated {
    let reply = post(client, "/api/v1/jobs", body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.data().unwrap()
}

async fn bid(client: &Client, job: &str, amount: i64, days: Option<i64>) -> Reply {
    post(
        client,
        &format!("/api/v1/jobs/{job}/bids"),
        json!({"amount": amount, "estimated_days": days, "message": "我可以做"}),
    )
    .await
}

async fn placed(client: &Client, job: &str, amount: i64, days: Option<i64>) -> Bid {
    let reply = bid(client, job, amount, days).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.data().unwrap()
}

async fn job_of(client: &Client, id: &str) -> Job {
    client.get(&format!("/api/v1/jobs/{id}")).await.unwrap()
}

async fn bids_of(client: &Client, job: &str) -> Vec<Bid> {
    client.get(&format!("/api/v1/jobs/{job}/bids")).await.unwrap()
}

/// The types of the client's notifications (the first 100).
async fn notices(app: &TestApp, client: &Client) -> Vec<String> {
    app.app.fan_out().await.unwrap();
    let list: NotificationList = client.get("/api/v1/notifications?limit=100").await.unwrap();
    list.items.into_iter().map(|n| n.kind).collect()
}

/// Waits (at most 10 s, failing after) until the client has a notification of type
/// `kind`: the server's own fan-out worker may be projecting the event as the test looks.
/// Notifications are projected in log order, so once one is there, every notification of
/// an earlier event is too: what is absent then was never announced.
async fn expect_notice(app: &TestApp, client: &Client, kind: &str) {
    let what = format!("a {kind} notification");
    eventually(10, &what, || async { notices(app, client).await.iter().any(|k| k == kind).then_some(()) })
        .await;
}

/// Runs background work until `check` holds (at most 10 s): the server's own chore
/// runner may hold a chore at the moment the test runs them.
async fn after_background<T, F, Fut>(app: &TestApp, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(10, what, || {
        let ran = app.run_background();
        let next = check();
        async move {
            let ran = ran.await;
            assert_eq!((ran.retried, ran.failed), (0, 0), "{what}: {ran:?}");
            next.await
        }
    })
    .await
}

async fn posting_matches_workers_with_reasons_and_tells_them(b: Backend) {
    let app = TestApp::new(b).await;
    let (poster, client) = app.funded_human("Paula", 1000).await;
    let (online, online_client) = app.agent("Online", &["translation", "writing"]).await;
    online_client.heartbeat(false).await.unwrap();
    let (offline, offline_client) = app.agent("Offline", &["CHINESE", "translation"]).await;
    let (_, _) = app.agent("Painter", &["painting"]).await;
    let (_, _) = app.human("Hank").await;

    let created = post_job(&client, base_job()).await;
    let job = &created.job;
    assert!(job.id.starts_with("tsk_"));
    assert_eq!(job.requester_id, poster.account.id);
    assert_eq!((job.status.as_str(), job.bid_limit, job.max_workers), ("open", 50, 1));
    assert_eq!(job.tags, ["translation", "chinese"], "tags are lower-cased");
    assert_eq!(
        (job.award.as_str(), job.privacy.as_str(), job.currency.as_str()),
        ("choose", "public", "PTS")
    );
    let ids: Vec<&str> = created.matched_workers.iter().map(|m| m.account_id.as_str()).collect();
    assert_eq!(
        ids,
        [online.account.id.as_str(), offline.account.id.as_str()],
        "online first; others unmatched"
    );
    let first = &created.matched_workers[0];
    assert!(first.online && first.fits_executor_preference);
    assert_eq!(first.covered_tags, ["translation"]);
    assert_eq!(first.completed_count, 0);
    assert!((first.reputation - 0.5).abs() < 1e-9);
    assert_eq!(
        created.matched_workers[1].covered_tags,
        ["translation", "chinese"],
        "skills match case-insensitively"
    );
    assert!(!created.matched_workers[1].online);

    // The posting is a task of kind job, in the one task model.
    let task: Task = client.task(&job.id).await.unwrap();
    assert_eq!((task.kind.as_str(), task.status.as_str()), ("job", "open"));
    assert_eq!(task.details["role"], "posting");

    // Matched workers are told; the requester is not.
    expect_notice(&app, &online_client, "task.matched").await;
    expect_notice(&app, &offline_client, "task.matched").await;

    // An agent-only job matches no human, a human-only job no agent.
    let ai = post_job(&client, with(base_job(), json!({"executor_preference": "human_only"}))).await;
    assert!(ai.matched_workers.is_empty(), "both skilled workers are agents");
}

async fn bad_jobs_are_422_with_paths(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let cases = [
        (json!({"budget_max": 10}), vec!["title"]),
        (
            with(base_job(), json!({"budget_min": 900, "tags": ["ok", "not ok"], "deadline": "tomorrow"})),
            vec!["deadline", "tags[1]", "budget_max"],
        ),
        (
            with(base_job(), json!({"award": "reverse_auction", "max_workers": 0})),
            vec!["max_workers", "deadline"],
        ),
        (with(base_job(), json!({"currency": "XYZ"})), vec!["currency"]),
        (with(base_job(), json!({"deadline": "2020-01-01T00:00:00Z"})), vec!["deadline"]),
    ];
    for (body, paths) in cases {
        let reply = post(&client, "/api/v1/jobs", body.clone()).await;
        assert_error(&reply, 422, "VALIDATION_ERROR");
        let mut got = error_paths(&reply);
        got.sort();
        let mut want: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
        want.sort();
        assert_eq!(got, want, "{body}");
    }
    let unknown = post(&client, "/api/v1/jobs", with(base_job(), json!({"surprise": 1}))).await;
    assert_error(&unknown, 422, "VALIDATION_ERROR");
    let (_, jobs) = list(&client, "?mine=true").await;
    assert_eq!(jobs, 0, "nothing was stored");
}

async fn list(client: &Client, query: &str) -> (Vec<Job>, u64) {
    let reply = get(client, &format!("/api/v1/jobs{query}")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    (reply.data().unwrap(), reply.json["pagination"]["total"].as_u64().unwrap())
}

fn titles(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.title.as_str()).collect()
}

async fn search_reads_words_tags_budgets_and_sorts(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let (_, other) = app.funded_human("Oscar", 1000).await;
    post_job(
        &client,
        json!({"title": "数据分析报告", "tags": ["data"], "budget_min": 100, "budget_max": 200}),
    )
    .await;
    post_job(&client, json!({"title": "Rust backend", "tags": ["rust"], "budget_max": 900, "executor_preference": "ai_only"}))
        .await;
    let logo = post_job(
        &client,
        json!({"title": "A logo", "tags": ["design"], "budget_max": 50, "budget_type": "bidding",
        "deadline": Timestamp::now().plus_seconds(3600).to_rfc3339()}),
    )
    .await;
    post_job(
        &client,
        json!({"title": "Secret rust work", "tags": ["rust"], "budget_max": 300, "privacy": "invite_only"}),
    )
    .await;

    assert_eq!(
        titles(&list(&other, "?q=数据分析").await.0),
        ["数据分析报告"],
        "Chinese words by their characters"
    );
    assert_eq!(titles(&list(&other, "?q=RUST%20backend").await.0), ["Rust backend"]);
    assert_eq!(list(&other, "?q=backend%20logo").await.1, 0, "every word must occur");
    assert_eq!(
        titles(&list(&other, "?tag=rust").await.0),
        ["Rust backend"],
        "an invite-only job is not listed"
    );
    assert_eq!(list(&client, "?tag=rust").await.1, 2, "its requester sees it");
    assert_eq!(titles(&list(&other, "?budget_min=250&budget_max=1000").await.0), ["Rust backend"]);
    assert_eq!(titles(&list(&other, "?executor_preference=ai_only").await.0), ["Rust backend"]);
    assert_eq!(titles(&list(&other, "?budget_type=bidding").await.0), ["A logo"]);
    assert_eq!(
        titles(&list(&other, "?sort=budget_high").await.0),
        ["Rust backend", "数据分析报告", "A logo"]
    );
    assert_eq!(
        titles(&list(&other, "?sort=deadline").await.0)[0],
        "A logo",
        "deadlines first, soonest first"
    );
    assert_eq!(titles(&list(&other, "?limit=1&page=2").await.0), ["Rust backend"], "newest first, paged");
    let (_, hidden) = list(&other, "?status=cancelled").await;
    assert_eq!(hidden, 0);
    let bad = get(&other, "/api/v1/jobs?sort=cheapest&status=nope").await;
    assert_error(&bad, 422, "VALIDATION_ERROR");
    // The invite-only job is a 404 for strangers.
    let secret = list(&client, "?tag=rust&mine=true")
        .await
        .0
        .into_iter()
        .find(|j| j.privacy == "invite_only")
        .unwrap();
    assert_error(&get(&other, &format!("/api/v1/jobs/{}", secret.id)).await, 404, "NOT_FOUND");
    assert_eq!(job_of(&other, &logo.job.id).await.title, "A logo");
}

async fn every_bid_refusal_has_its_code(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let (_, agent) = app.agent("Bot", &["translation"]).await;
    let (_, human) = app.human("Hana").await;
    let (_, late) = app.agent("Late", &[]).await;
    let job = post_job(&client, with(base_job(), json!({"bid_limit": 2, "executor_preference": "ai_only"})))
        .await
        .job;
    let path = format!("/api/v1/jobs/{}/bids", job.id);

    assert_error(&bid(&client, &job.id, 100, None).await, 403, "CANNOT_BID_OWN_JOB");
    let wrong_kind = bid(&human, &job.id, 100, None).await;
    assert_error(&wrong_kind, 403, "EXECUTOR_PREFERENCE_MISMATCH");
    assert_eq!(wrong_kind.json["error"]["details"]["executor_preference"], "ai_only");
    let bad =
        post(&agent, &path, json!({"amount": 0, "estimated_days": 0, "sample_links": ["ftp://x"]})).await;
    assert_error(&bad, 422, "VALIDATION_ERROR");
    assert_eq!(error_paths(&bad), ["amount", "estimated_days", "sample_links[0]"]);
    assert_error(
        &post(&agent, &path, json!({"amount": 5, "currency": "USD"})).await,
        422,
        "VALIDATION_ERROR",
    );

    let first = placed(&agent, &job.id, 300, Some(3)).await;
    assert_eq!((first.status.as_str(), first.rank), ("pending", Some(1)));
    assert_error(&bid(&agent, &job.id, 200, None).await, 409, "DUPLICATE_BID");
    let (_, third) = app.agent("Third", &[]).await;
    placed(&third, &job.id, 250, None).await;
    let full = bid(&late, &job.id, 100, None).await;
    assert_error(&full, 400, "BID_LIMIT_REACHED");
    assert_eq!(full.json["error"]["details"], json!({"job_id": job.id, "bid_limit": 2, "current_bids": 2}));

    // Withdrawing frees a place; the withdrawn bid cannot be withdrawn again.
    let w = post(&agent, &format!("/api/v1/bids/{}/withdraw", first.id), json!({})).await;
    assert_eq!(w.status, 200, "{}", w.text);
    assert_error(
        &post(&agent, &format!("/api/v1/bids/{}/withdraw", first.id), json!({})).await,
        400,
        "BID_NOT_PENDING",
    );
    placed(&late, &job.id, 100, None).await;
    // Others' bids are not theirs to withdraw: 404.
    assert_error(
        &post(&late, &format!("/api/v1/bids/{}/withdraw", first.id), json!({})).await,
        404,
        "NOT_FOUND",
    );

    let closed = post(&client, &format!("/api/v1/jobs/{}/cancel", job.id), json!({})).await;
    assert_eq!(closed.status, 200, "{}", closed.text);
    let (_, fourth) = app.agent("Fourth", &[]).await;
    assert_error(&bid(&fourth, &job.id, 100, None).await, 400, "JOB_NOT_OPEN");
    assert_error(&bid(&fourth, "tsk_00000000000000000000000000", 100, None).await, 404, "NOT_FOUND");
    // A job past its deadline takes no bids, even before its close has run.
    let soon = post_job(
        &client,
        with(base_job(), json!({"deadline": Timestamp::now().plus_seconds(60).to_rfc3339()})),
    )
    .await;
    let (_, early) = app.agent("Early", &[]).await;
    let in_time = placed(&early, &soon.job.id, 100, None).await;
    app.advance(Duration::from_secs(120));
    assert_error(&bid(&fourth, &soon.job.id, 100, None).await, 400, "JOB_NOT_OPEN");
    let late_hire = post(&client, &format!("/api/v1/bids/{}/accept", in_time.id), json!({})).await;
    assert_error(&late_hire, 400, "JOB_NOT_OPEN");
}

async fn fifty_concurrent_bids_against_a_limit_of_five_leave_five(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let job = post_job(&client, with(base_job(), json!({"bid_limit": 5}))).await.job;
    let mut bidders = Vec::new();
    for i in 0..50 {
        bidders.push(app.agent(&format!("Bidder {i}"), &[]).await.1);
    }
    let tasks: Vec<_> = bidders
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let id = job.id.clone();
            tokio::spawn(async move { bid(&c, &id, 100 + i as i64, None).await })
        })
        .collect();
    let mut created = 0;
    let mut full = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            201 => created += 1,
            400 => {
                assert_eq!(r.code(), Some("BID_LIMIT_REACHED"), "{}", r.text);
                full += 1;
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!((created, full), (5, 45));
    assert_eq!(bids_of(&client, &job.id).await.len(), 5);
    assert_eq!(job_of(&client, &job.id).await.bid_count, 5);
}

async fn a_job_with_two_workers_hires_twice_then_fills(b: Backend) {
    let app = TestApp::new(b).await;
    let (poster, client) = app.funded_human("Paula", 1000).await;
    let job = post_job(&client, with(base_job(), json!({"max_workers": 2}))).await.job;
    let (a_reg, a) = app.agent("A", &[]).await;
    let (b_reg, bb) = app.agent("B", &[]).await;
    let (_, c) = app.agent("C", &[]).await;
    let (_, h) = app.human("Hugo").await;
    let bid_a = placed(&a, &job.id, 300, Some(5)).await;
    let bid_b = placed(&bb, &job.id, 200, Some(2)).await;
    let bid_c = placed(&c, &job.id, 400, None).await;
    let bid_h = placed(&h, &job.id, 450, None).await;

    // Ranked: B (cheapest and fastest) first.
    let ranks: Vec<(String, Option<u32>)> =
        bids_of(&client, &job.id).await.into_iter().map(|b| (b.id, b.rank)).collect();
    assert_eq!(ranks[1], (bid_b.id.clone(), Some(1)));

    let reply = post(&client, &format!("/api/v1/bids/{}/accept", bid_a.id), json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let first: BidAccepted = reply.data().unwrap();
    assert_eq!(
        (first.bid.status.as_str(), first.job.hired_count, first.job.status.as_str()),
        ("accepted", 1, "open")
    );
    let hire = &first.hire;
    assert_eq!((hire.kind.as_str(), hire.status.as_str()), ("job", "queued"));
    assert_eq!(hire.assignee_id.as_deref(), Some(a_reg.account.id.as_str()));
    assert_eq!(hire.requester_id, poster.account.id);
    assert_eq!(hire.price.as_ref().unwrap().amount, 300);
    assert!(hire.hold_id.is_some());
    assert_eq!(hire.details, json!({"role": "hire", "job_id": job.id, "bid_id": bid_a.id}));
    assert_eq!(app.pts(&client).await, (700, 300));
    // The hired agent finds the hire in its inbox.
    let inbox: Task = a.inbox(1).await.unwrap().expect("the hire is queued for its worker");
    assert_eq!(inbox.id, hire.id);
    assert_error(
        &post(&client, &format!("/api/v1/bids/{}/accept", bid_a.id), json!({})).await,
        400,
        "BID_NOT_PENDING",
    );

    let second: BidAccepted =
        post(&client, &format!("/api/v1/bids/{}/accept", bid_b.id), json!({})).await.data().unwrap();
    assert_eq!(second.hire.assignee_id.as_deref(), Some(b_reg.account.id.as_str()));
    assert_ne!(second.hire.hold_id, first.hire.hold_id, "each hire has its own escrow");
    assert_eq!(
        (second.job.hired_count, second.job.status.as_str()),
        (2, "completed"),
        "full: bidding closed"
    );
    assert_eq!(app.pts(&client).await, (500, 500));

    let all = bids_of(&client, &job.id).await;
    let status = |id: &str| all.iter().find(|b| b.id == id).unwrap().status.clone();
    assert_eq!((status(&bid_c.id), status(&bid_h.id)), ("rejected".into(), "rejected".into()));
    expect_notice(&app, &c, "bid.rejected").await;
    expect_notice(&app, &a, "bid.accepted").await;
    let hire_events = client.task(&first.hire.id).await.unwrap().timeline.unwrap();
    let kinds: Vec<&str> = hire_events.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["task.created", "payment.held", "task.assigned", "task.claimed"],
        "the hire's own timeline"
    );
    assert_error(
        &post(&client, &format!("/api/v1/bids/{}/accept", bid_c.id), json!({})).await,
        400,
        "JOB_NOT_OPEN",
    );
    // The posting's timeline carries the bid events, from the one event log.
    let posting = client.task(&job.id).await.unwrap();
    let kinds: Vec<String> = posting.timeline.unwrap().into_iter().map(|e| e.event_type).collect();
    for k in ["task.created", "bid.created", "bid.accepted", "bid.rejected", "task.completed"] {
        assert!(kinds.iter().any(|e| e == k), "{k} in {kinds:?}");
    }
    let (_, count) = list(&c, "?status=completed").await;
    assert_eq!(count, 1);
}

async fn accepting_without_funds_is_402_and_changes_nothing(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 100).await;
    let job = post_job(&client, base_job()).await.job;
    let (_, agent) = app.agent("Bot", &[]).await;
    let offer = placed(&agent, &job.id, 300, None).await;
    let before = (app.pts(&client).await, job_of(&client, &job.id).await, bids_of(&client, &job.id).await);
    let tasks_before = client.get::<Vec<Task>>("/api/v1/tasks?role=requester").await.unwrap().len();

    let reply = post(&client, &format!("/api/v1/bids/{}/accept", offer.id), json!({})).await;
    assert_error(&reply, 402, "INSUFFICIENT_FUNDS");

    let after = (app.pts(&client).await, job_of(&client, &job.id).await, bids_of(&client, &job.id).await);
    assert_eq!(before, after, "wallet, job and bids as they were");
    assert_eq!(
        client.get::<Vec<Task>>("/api/v1/tasks?role=requester").await.unwrap().len(),
        tasks_before,
        "no hire task"
    );
    // A later event for the agent: once its notice is there, a bid.accepted would be too.
    let _: Bid = client.post(&format!("/api/v1/bids/{}/reject", offer.id), &json!({})).await.unwrap();
    expect_notice(&app, &agent, "bid.rejected").await;
    assert!(!notices(&app, &agent).await.contains(&"bid.accepted".to_owned()));
}

async fn bids_are_seen_by_the_requester_and_their_bidder_only(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let job = post_job(&client, base_job()).await.job;
    let (_, a) = app.agent("A", &[]).await;
    let (_, bb) = app.agent("B", &[]).await;
    let (_, stranger) = app.human("Sam").await;
    let bid_a = placed(&a, &job.id, 300, None).await;
    let bid_b = placed(&bb, &job.id, 200, None).await;

    assert_eq!(bids_of(&client, &job.id).await.len(), 2);
    let mine: Vec<String> = bids_of(&a, &job.id).await.into_iter().map(|b| b.id).collect();
    assert_eq!(mine, std::slice::from_ref(&bid_a.id));
    assert_eq!(bids_of(&stranger, &job.id).await.len(), 0);
    // Acting on another's bid: 404 for bidders and strangers alike.
    for who in [&bb, &stranger] {
        assert_error(
            &post(who, &format!("/api/v1/bids/{}/accept", bid_a.id), json!({})).await,
            404,
            "NOT_FOUND",
        );
        assert_error(
            &post(who, &format!("/api/v1/bids/{}/reject", bid_a.id), json!({})).await,
            404,
            "NOT_FOUND",
        );
    }
    assert_error(
        &post(&client, &format!("/api/v1/bids/{}/withdraw", bid_b.id), json!({})).await,
        404,
        "NOT_FOUND",
    );
    // My bids.
    let reply = get(&bb, "/api/v1/bids?status=pending").await;
    let my: Vec<Bid> = reply.data().unwrap();
    assert_eq!(my.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), [bid_b.id.as_str()]);
    // A rejection with a reason reaches the bidder.
    let rejected: Bid = client
        .post(&format!("/api/v1/bids/{}/reject", bid_b.id), &json!({"reason": "太贵了"}))
        .await
        .unwrap();
    assert_eq!((rejected.status.as_str(), rejected.reason.as_deref()), ("rejected", Some("太贵了")));
    expect_notice(&app, &bb, "bid.rejected").await;
    expect_notice(&app, &client, "bid.created").await;
}

async fn a_counter_offer_is_answered_once_and_kept_in_history(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let job = post_job(&client, base_job()).await.job;
    let (_, agent) = app.agent("Bot", &[]).await;
    let offer = placed(&agent, &job.id, 400, Some(10)).await;
    let counter_path = format!("/api/v1/bids/{}/counter", offer.id);

    assert_error(&post(&agent, &format!("{counter_path}/accept"), json!({})).await, 400, "NO_COUNTER_OFFER");
    assert_error(&post(&client, &counter_path, json!({})).await, 422, "VALIDATION_ERROR");
    assert_error(&post(&agent, &counter_path, json!({"amount": 300})).await, 404, "NOT_FOUND");
    let countered: Bid =
        client.post(&counter_path, &json!({"amount": 300, "estimated_days": 7})).await.unwrap();
    let c = countered.counter.clone().unwrap();
    assert_eq!((c.amount, c.estimated_days, c.state.as_str()), (Some(300), Some(7), "offered"));
    assert_eq!(countered.amount, 400, "the bid keeps its terms until the bidder agrees");
    assert_error(&post(&client, &counter_path, json!({"amount": 250})).await, 409, "COUNTER_ALREADY_MADE");
    expect_notice(&app, &agent, "bid.countered").await;

    let agreed: Bid = agent.post(&format!("{counter_path}/accept"), &json!({})).await.unwrap();
    assert_eq!((agreed.amount, agreed.estimated_days), (300, Some(7)));
    assert_eq!(agreed.counter.unwrap().state, "accepted");
    let history: Vec<(&str, i64)> = agreed.history.iter().map(|h| (h.what.as_str(), h.amount)).collect();
    assert_eq!(history, [("placed", 400), ("countered", 300), ("counter_accepted", 300)]);
    assert_error(&post(&agent, &format!("{counter_path}/decline"), json!({})).await, 400, "NO_COUNTER_OFFER");

    let hired: BidAccepted =
        client.post(&format!("/api/v1/bids/{}/accept", offer.id), &json!({})).await.unwrap();
    assert_eq!(hired.hire.price.unwrap().amount, 300, "the agreed amount is held");

    // Declining keeps the bid's own terms.
    let job2 = post_job(&client, base_job()).await.job;
    let offer2 = placed(&agent, &job2.id, 400, None).await;
    let _: Bid = client
        .post(&format!("/api/v1/bids/{}/counter", offer2.id), &json!({"estimated_days": 3}))
        .await
        .unwrap();
    let declined: Bid =
        agent.post(&format!("/api/v1/bids/{}/counter/decline", offer2.id), &json!({})).await.unwrap();
    assert_eq!(
        (declined.amount, declined.estimated_days, declined.counter.unwrap().state.as_str()),
        (400, None, "declined")
    );
}

async fn invitations_open_an_invite_only_job_and_are_limited_per_day(b: Backend) {
    let mut config = test_config();
    config.rate_limits = agora_app::limits::default_named();
    let app = TestApp::with_config(b, config).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let job = post_job(&client, with(base_job(), json!({"privacy": "invite_only"}))).await.job;
    let (guest_reg, guest) = app.agent("Guest", &[]).await;
    let (_, other) = app.agent("Other", &[]).await;

    assert_error(&bid(&guest, &job.id, 100, None).await, 404, "NOT_FOUND");
    let path = format!("/api/v1/jobs/{}/invitations", job.id);
    assert_error(&post(&other, &path, json!({"provider_id": guest_reg.account.id})).await, 404, "NOT_FOUND");
    let reply = post(&client, &path, json!({"provider_id": guest_reg.account.id})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let inv: Invitation = reply.data().unwrap();
    assert!(inv.id.starts_with("inv_"));
    expect_notice(&app, &guest, "invitation.received").await;
    let mine: Vec<Invitation> = guest.get("/api/v1/invitations").await.unwrap();
    assert_eq!(mine[0].job.as_ref().unwrap().id, job.id);
    assert_eq!(job_of(&guest, &job.id).await.id, job.id, "an invitee sees the job");
    placed(&guest, &job.id, 100, None).await;
    assert_error(&bid(&other, &job.id, 100, None).await, 404, "NOT_FOUND");

    // Ten new invitations a day per requester; the eleventh is 429 with Retry-After.
    let mut last = None;
    for i in 0..10 {
        let (reg, _) = app.agent(&format!("Invitee {i}"), &[]).await;
        last = Some(post(&client, &path, json!({"provider_id": reg.account.id})).await);
    }
    let last = last.unwrap();
    assert_error(&last, 429, "RATE_LIMITED");
    assert!(last.header("retry-after").is_some_and(|s| s.parse::<u64>().unwrap() > 0));
    // Inviting someone already invited costs nothing and answers the same invitation.
    let again: Invitation = client.post(&path, &json!({"provider_id": guest_reg.account.id})).await.unwrap();
    assert_eq!((again.id, again.provider_id), (inv.id, guest_reg.account.id));
}

async fn a_reverse_auction_awards_its_lowest_bids_at_the_deadline_once(b: Backend) {
    let app = TestApp::new(b).await;
    let (poster, client) = app.funded_human("Paula", 1000).await;
    let deadline = app.app.now().plus_seconds(3600).to_rfc3339();
    let body = with(base_job(), json!({"award": "reverse_auction", "deadline": deadline, "max_workers": 2}));
    let job = post_job(&client, body).await.job;
    let mut offers = Vec::new();
    for (i, amount) in [400, 150, 300, 150].into_iter().enumerate() {
        let (_, c) = app.agent(&format!("Bidder {i}"), &[]).await;
        offers.push(placed(&c, &job.id, amount, None).await);
    }
    let ranks: Vec<Option<u32>> = bids_of(&client, &job.id).await.into_iter().map(|b| b.rank).collect();
    assert_eq!(ranks, [Some(4), Some(1), Some(3), Some(2)], "lowest first; ties to the earlier bid");
    let by_hand = post(&client, &format!("/api/v1/bids/{}/accept", offers[1].id), json!({})).await;
    assert_error(&by_hand, 400, "AWARDED_AT_DEADLINE");

    app.run_background().await;
    assert_eq!(job_of(&client, &job.id).await.status, "open", "not before the deadline");
    app.advance(Duration::from_secs(3601));
    let client = app.sign_in_again(&poster).await;
    let closed = after_background(&app, "the auction to close", || async {
        Some(job_of(&client, &job.id).await).filter(|j| j.status != "open")
    })
    .await;
    assert_eq!((closed.status.as_str(), closed.hired_count), ("completed", 2));
    let all = bids_of(&client, &job.id).await;
    let statuses: Vec<&str> = all.iter().map(|b| b.status.as_str()).collect();
    assert_eq!(statuses, ["rejected", "accepted", "rejected", "accepted"]);
    assert_eq!(app.pts(&client).await, (700, 300), "two holds of 150");
    app.advance(Duration::from_secs(3600));
    let client = app.sign_in_again(&poster).await;
    app.run_background().await;
    assert_eq!(job_of(&client, &job.id).await.hired_count, 2, "the close ran once");
    assert_eq!(app.pts(&client).await, (700, 300));

    // Without bids the auction expires.
    let deadline = app.app.now().plus_seconds(60).to_rfc3339();
    let empty =
        post_job(&client, with(base_job(), json!({"award": "reverse_auction", "deadline": deadline})))
            .await
            .job;
    app.advance(Duration::from_secs(61));
    let expired = after_background(&app, "the empty auction to close", || async {
        Some(job_of(&client, &empty.id).await).filter(|j| j.status != "open")
    })
    .await;
    assert_eq!(expired.status, "expired");
}

async fn auto_bid_rules_place_one_bid_per_matching_agent(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let rule = |min: i64, max: i64, categories: Value| {
        json!({"enabled": true, "min_price": min, "max_price": max, "categories": categories,
            "max_deadline_days": 7, "auto_respond": true, "response_template": "感谢! 预估 {price}, 任务: {title}"})
    };
    let (yes_reg, yes) = app.agent("Yes", &[]).await;
    let (any_reg, any) = app.agent("Any category", &[]).await;
    let (_, pricey) = app.agent("Pricey", &[]).await;
    let (_, elsewhere) = app.agent("Elsewhere", &[]).await;
    let (_, off) = app.agent("Off", &[]).await;
    let (_, human) = app.human("Hana").await;
    for (c, body) in [
        (&yes, rule(100, 300, json!(["translation", "writing"]))),
        (&any, rule(50, 150, json!([]))),
        (&pricey, rule(600, 900, json!([]))),
        (&elsewhere, rule(100, 300, json!(["design"]))),
        (&off, with(rule(100, 300, json!([])), json!({"enabled": false}))),
    ] {
        let r = c.send(Method::PUT, "/api/v1/me/auto-bid-rules", Some(&body), &[]).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let got: Value = yes.get("/api/v1/me/auto-bid-rules").await.unwrap();
    assert_eq!(
        (got["auto_bid_enabled"].as_bool(), got["auto_bid_rules"]["max_price"].as_i64()),
        (Some(true), Some(300))
    );
    let r = human
        .send(Method::PUT, "/api/v1/me/auto-bid-rules", Some(&rule(1, 2, json!([]))), &[])
        .await
        .unwrap();
    assert_error(&r, 403, "NOT_AN_AGENT");
    let r = yes
        .send(Method::PUT, "/api/v1/me/auto-bid-rules", Some(&rule(300, 100, json!(["no spaces"]))), &[])
        .await
        .unwrap();
    assert_error(&r, 422, "VALIDATION_ERROR");

    let created = post_job(&client, base_job()).await;
    // The response shows the posting's own transaction: no bid was placed inside it.
    assert_eq!(created.job.bid_count, 0, "auto-bids are placed by background work");
    let job = created.job;
    after_background(&app, "the auto-bids", || async {
        (bids_of(&client, &job.id).await.len() >= 2).then_some(())
    })
    .await;
    app.run_background().await;
    let bids = bids_of(&client, &job.id).await;
    let mut who: Vec<(&str, i64)> = bids.iter().map(|b| (b.bidder_id.as_str(), b.amount)).collect();
    who.sort();
    let mut want = vec![(yes_reg.account.id.as_str(), 300), (any_reg.account.id.as_str(), 150)];
    want.sort();
    assert_eq!(who, want, "one bid per matching rule, at its top price capped by the budget");
    let from_yes = bids.iter().find(|b| b.bidder_id == yes_reg.account.id).unwrap();
    assert_eq!(from_yes.message, format!("感谢! 预估 300 PTS, 任务: {}", job.title));
    expect_notice(&app, &client, "bid.created").await;
    expect_notice(&app, &yes, "task.created").await;
}

async fn held_bids_wait_for_an_admin(b: Backend) {
    let mut config = test_config();
    config.bid_review_first_bids = 1;
    config.bid_review_account_days = 7;
    let app = TestApp::with_config(b, config).await;
    let admin = app.admin().await;
    let (poster, client) = app.funded_human("Paula", 1000).await;
    let job = post_job(&client, base_job()).await.job;
    let (_, newbie) = app.agent("Newbie", &[]).await;
    let (_, spammer) = app.agent("Spammer", &[]).await;

    let held = placed(&newbie, &job.id, 200, None).await;
    assert_eq!(held.review, "pending");
    let spam = placed(&spammer, &job.id, 1, None).await;
    assert!(bids_of(&client, &job.id).await.is_empty(), "held bids are invisible to the requester");
    assert_eq!(bids_of(&newbie, &job.id).await.len(), 1, "their bidder sees them");
    // A later event for the requester: once its notice is there, a bid.created would be too.
    let top_up = agora_client::types::TopUpRequest { amount: 1, currency: "PTS".into(), reason: None };
    admin.top_up(&poster.account.id, &top_up).await.unwrap();
    expect_notice(&app, &client, "payment.topped_up").await;
    assert!(!notices(&app, &client).await.contains(&"bid.created".to_owned()), "held bids are not announced");
    // The requester cannot act on a held bid.
    assert_error(
        &post(&client, &format!("/api/v1/bids/{}/accept", held.id), json!({})).await,
        404,
        "NOT_FOUND",
    );

    assert_error(&get(&client, "/api/v1/admin/bids/pending-review").await, 403, "FORBIDDEN");
    let queue: Vec<Bid> = admin.get("/api/v1/admin/bids/pending-review").await.unwrap();
    assert_eq!(queue.len(), 2);
    let approved: Bid =
        admin.post(&format!("/api/v1/admin/bids/{}/approve", held.id), &json!({})).await.unwrap();
    assert_eq!(approved.review, "clear");
    let refused: Bid =
        admin.post(&format!("/api/v1/admin/bids/{}/reject", spam.id), &json!({})).await.unwrap();
    assert_eq!((refused.review.as_str(), refused.status.as_str()), ("refused", "rejected"));
    assert_error(
        &post(&admin, &format!("/api/v1/admin/bids/{}/approve", spam.id), json!({})).await,
        404,
        "NOT_FOUND",
    );

    let seen: Vec<String> = bids_of(&client, &job.id).await.into_iter().map(|b| b.id).collect();
    assert_eq!(seen, std::slice::from_ref(&held.id), "the approved bid appears; the refused one never does");
    expect_notice(&app, &client, "bid.created").await;
    expect_notice(&app, &spammer, "bid.rejected").await;
    assert_eq!(job_of(&client, &job.id).await.bid_count, 1, "a refused bid does not count");
    // Only the first bid of a young account is held.
    let job2 = post_job(&client, base_job()).await.job;
    assert_eq!(placed(&newbie, &job2.id, 200, None).await.review, "clear");
}

async fn cancel_and_close_end_bidding(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let (_, agent) = app.agent("Bot", &[]).await;
    let (_, other) = app.agent("Other", &[]).await;

    let job = post_job(&client, with(base_job(), json!({"max_workers": 3}))).await.job;
    let first = placed(&agent, &job.id, 100, None).await;
    placed(&other, &job.id, 100, None).await;
    let patched: Job = client
        .patch(&format!("/api/v1/jobs/{}", job.id), &json!({"title": "New title", "bid_limit": 10}))
        .await
        .unwrap();
    assert_eq!((patched.title.as_str(), patched.bid_limit), ("New title", 10));
    let low = client
        .send(Method::PATCH, &format!("/api/v1/jobs/{}", job.id), Some(&json!({"bid_limit": 1})), &[])
        .await
        .unwrap();
    assert_error(&low, 400, "JOB_LIMIT_BELOW_CURRENT");
    let currency = client
        .send(Method::PATCH, &format!("/api/v1/jobs/{}", job.id), Some(&json!({"currency": "USD"})), &[])
        .await
        .unwrap();
    assert_error(&currency, 422, "VALIDATION_ERROR");
    assert_error(
        &agent
            .send(Method::PATCH, &format!("/api/v1/jobs/{}", job.id), Some(&json!({"title": "Mine"})), &[])
            .await
            .unwrap(),
        404,
        "NOT_FOUND",
    );
    let _: BidAccepted = client.post(&format!("/api/v1/bids/{}/accept", first.id), &json!({})).await.unwrap();
    assert_error(
        &post(&client, &format!("/api/v1/jobs/{}/cancel", job.id), json!({})).await,
        400,
        "JOB_HAS_HIRES",
    );
    let closed: Job = client.post(&format!("/api/v1/jobs/{}/close", job.id), &json!({})).await.unwrap();
    assert_eq!((closed.status.as_str(), closed.hired_count), ("completed", 1));
    assert_eq!(bids_of(&other, &job.id).await[0].status, "rejected");
    assert_error(
        &post(&client, &format!("/api/v1/jobs/{}/close", job.id), json!({})).await,
        400,
        "JOB_NOT_OPEN",
    );
    let reply = client
        .send(Method::PATCH, &format!("/api/v1/jobs/{}", job.id), Some(&json!({"title": "Later"})), &[])
        .await
        .unwrap();
    assert_error(&reply, 400, "JOB_NOT_OPEN");

    let empty = post_job(&client, base_job()).await.job;
    let cancelled: Job = client.post(&format!("/api/v1/jobs/{}/close", empty.id), &json!({})).await.unwrap();
    assert_eq!(cancelled.status, "cancelled", "closed without a hire");
    assert_eq!(client.task(&empty.id).await.unwrap().status, "cancelled", "the posting task moved with it");
}

async fn banning_a_hired_worker_fails_the_hire_and_refunds_it(b: Backend) {
    let app = TestApp::new(b).await;
    let admin = app.admin().await;
    let (_, client) = app.funded_human("Paula", 1000).await;
    let (worker, agent) = app.agent("Bot", &[]).await;
    let job = post_job(&client, base_job()).await.job;
    let offer = placed(&agent, &job.id, 300, None).await;
    let hired: BidAccepted =
        client.post(&format!("/api/v1/bids/{}/accept", offer.id), &json!({})).await.unwrap();
    assert_eq!(app.pts(&client).await, (700, 300));

    let reply = post(&admin, &format!("/api/v1/admin/accounts/{}/ban", worker.account.id), json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let hire = client.task(&hired.hire.id).await.unwrap();
    assert_eq!(hire.status, "failed", "a hire names its worker: it cannot reopen for another");
    assert_eq!(app.pts(&client).await, (1000, 0), "refunded");
}
