//! Bounties over HTTP: posting (the reward held at once), the open list and details, the
//! claim race, delivery against the output schema, acceptance, late delivery's penalty, and
//! cancelling: unclaimed (refunded), claimed (refused until overdue), overdue (reopened).

use agora_client::{
    Client, Reply,
    types::{BountyRequest, DeliverRequest, Task},
};
use agora_core::{TaskId, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, error_paths};

both_backends!(
    posting_holds_the_reward,
    bad_bounties_are_422_with_paths,
    posting_without_the_reward_is_402,
    open_bounties_are_listed_for_everyone,
    exactly_one_of_eight_concurrent_claims_wins,
    the_poster_cannot_claim_its_own_bounty,
    delivery_and_acceptance_pay_the_reward_minus_the_fee,
    late_delivery_returns_the_penalty_to_the_poster,
    cancelling_an_unclaimed_bounty_refunds_it,
    a_claim_cannot_be_taken_back_before_it_is_overdue,
    an_overdue_claim_is_taken_back_and_the_bounty_reopens,
    claimed_bounties_leave_the_open_list,
    a_claimer_giving_up_reopens_the_bounty,
    delivered_work_cannot_be_taken_back_and_a_revision_keeps_it_on_time,
    strangers_see_an_open_bounty_without_its_history,
);

fn output_schema() -> Value {
    json!({
        "type": "object",
        "required": ["summary"],
        "properties": {"summary": {"type": "string", "minLength": 1}, "words": {"type": "integer"}},
    })
}

/// A bounty of `reward` PTS with a penalty of `penalty`, 24 hours to deliver, and an output
/// schema.
fn bounty(reward: i64, penalty: i64) -> BountyRequest {
    BountyRequest {
        title: "Summarise a paper".into(),
        short_description: "Five sentences on the attached paper".into(),
        description: Some("Plain words, please.".into()),
        reward_amount: reward,
        currency: None,
        penalty_amount: Some(penalty),
        max_delivery_hours: 24,
        input_schema: Some(json!({"type": "object", "required": ["url"]})),
        output_schema: Some(output_schema()),
        input_data: Some(json!({"url": "https://example.com/paper.pdf"})),
    }
}

async fn post_raw(client: &Client, body: &Value) -> Reply {
    client.send(Method::POST, "/api/v1/bounties", Some(body), &[]).await.unwrap()
}

async fn claim_raw(client: &Client, id: &str) -> Reply {
    client.send(Method::POST, &format!("/api/v1/bounties/{id}/claim"), None, &[]).await.unwrap()
}

async fn cancel_raw(client: &Client, id: &str) -> Reply {
    client.send(Method::POST, &format!("/api/v1/bounties/{id}/cancel"), None, &[]).await.unwrap()
}

async fn list(client: &Client, query: &str) -> (Vec<Task>, u64) {
    let reply = client.send(Method::GET, &format!("/api/v1/bounties{query}"), None, &[]).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    (reply.data().unwrap(), reply.json["pagination"]["total"].as_u64().unwrap())
}

fn ids(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

fn good_output() -> DeliverRequest {
    DeliverRequest {
        text: Some("Done.".into()),
        output: Some(json!({"summary": "It is about cats.", "words": 4})),
        ..Default::default()
    }
}

/// Moves the bounty's delivery deadline into the past, straight in the database.
async fn make_overdue(app: &TestApp, id: &str) {
    let mut tx = app.store.begin().await.unwrap();
    let mut task = tx.task_for_update(&TaskId::parse(id).unwrap()).await.unwrap().unwrap();
    assert!(task.deadline_at.is_some(), "a claimed bounty has a deadline");
    task.deadline_at = Some(Timestamp::from_millis(1));
    tx.update_task(&task).await.unwrap();
    tx.commit().await.unwrap();
}

async fn posting_holds_the_reward(b: Backend) {
    let app = TestApp::new(b).await;
    let (poster, client) = app.funded_human("Paula", 500).await;
    let reply = post_raw(&client, &serde_json::to_value(bounty(200, 50)).unwrap()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let task: Task = reply.data().unwrap();
    assert!(task.id.starts_with("tsk_"));
    assert_eq!((task.kind.as_str(), task.status.as_str()), ("bounty", "open"));
    assert_eq!(task.requester_id, poster.account.id);
    assert_eq!(task.assignee_id, None);
    assert_eq!(task.title, "Summarise a paper");
    assert_eq!(task.description, "Plain words, please.");
    assert_eq!(task.input, json!({"url": "https://example.com/paper.pdf"}));
    let price = task.price.clone().unwrap();
    assert_eq!((price.amount, price.currency.as_str()), (200, "PTS"));
    assert!(task.hold_id.is_some());
    assert_eq!(task.deadline_at, None, "the clock starts at the claim");
    assert_eq!(task.details["penalty"], 50);
    assert_eq!(task.details["max_delivery_hours"], 24);
    assert_eq!(task.details["short_description"], "Five sentences on the attached paper");
    assert_eq!(task.details["output_schema"], output_schema());
    assert_eq!(app.pts(&client).await, (300, 200), "the reward is held at once");

    let fetched: Task = client.get(&format!("/api/v1/bounties/{}", task.id)).await.unwrap();
    assert_eq!(fetched.status, "open");
    let anon = app
        .send(None, Method::POST, "/api/v1/bounties", Some(serde_json::to_value(bounty(1, 0)).unwrap()))
        .await;
    assert_error(&anon, 401, "UNAUTHORIZED");
}

async fn bad_bounties_are_422_with_paths(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, client) = app.funded_human("Paula", 500).await;
    let base = serde_json::to_value(bounty(200, 50)).unwrap();
    let with = |changes: Value| {
        let mut body = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (
            with(json!({
                "title": "A title of 21 chars!!",
                "reward_amount": 0,
                "penalty_amount": 0,
                "max_delivery_hours": 0,
            })),
            vec!["title", "reward_amount", "max_delivery_hours"],
        ),
        (with(json!({"title": "x".repeat(20)})), vec![]),
        (with(json!({"short_description": "x".repeat(201)})), vec!["short_description"]),
        (with(json!({"short_description": "  "})), vec!["short_description"]),
        (with(json!({"reward_amount": -5, "penalty_amount": 0})), vec!["reward_amount"]),
        (with(json!({"penalty_amount": 201})), vec!["penalty_amount"]),
        (with(json!({"penalty_amount": -1})), vec!["penalty_amount"]),
        (with(json!({"max_delivery_hours": 8761})), vec!["max_delivery_hours"]),
        (with(json!({"input_data": {"link": "x"}})), vec!["input_data"]),
        (with(json!({"output_schema": {"type": 3}})), vec!["output_schema"]),
        (with(json!({"currency": "XYZ"})), vec!["currency"]),
    ];
    let mut posted = 0;
    for (body, paths) in cases {
        let reply = post_raw(&client, &body).await;
        if paths.is_empty() {
            assert_eq!(reply.status, 201, "{body}: {}", reply.text);
            posted += 200;
            continue;
        }
        let got = error_paths(&reply);
        if paths == ["output_schema"] {
            assert!(!got.is_empty() && got.iter().all(|p| p.starts_with("output_schema")), "{body}: {got:?}");
        } else {
            assert_eq!(got, paths, "{body}");
        }
    }
    assert_eq!(app.pts(&client).await, (500 - posted, posted), "only the valid bounty holds money");
}

async fn posting_without_the_reward_is_402(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, broke) = app.human("Bill").await;
    assert_error(
        &post_raw(&broke, &serde_json::to_value(bounty(200, 0)).unwrap()).await,
        402,
        "INSUFFICIENT_FUNDS",
    );
    let (_, short) = app.funded_human("Sue", 199).await;
    assert_error(
        &post_raw(&short, &serde_json::to_value(bounty(200, 0)).unwrap()).await,
        402,
        "INSUFFICIENT_FUNDS",
    );
    assert_eq!(app.pts(&short).await, (199, 0), "nothing held");
    let (_, stranger) = app.human("Sam").await;
    assert_eq!(list(&stranger, "").await.1, 0, "nothing was posted");
    let exact = post_raw(&short, &serde_json::to_value(bounty(199, 0)).unwrap()).await;
    assert_eq!(exact.status, 201, "{}", exact.text);
    assert_eq!(app.pts(&short).await, (0, 199));
}

async fn open_bounties_are_listed_for_everyone(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let first = poster.post_bounty(&bounty(100, 0)).await.unwrap();
    let second = poster
        .post_bounty(&BountyRequest { title: "Translate a poem".into(), ..bounty(150, 10) })
        .await
        .unwrap();
    let (_, stranger) = app.human("Sam").await;
    let (_, agent) = app.agent("Scout", &["writing"]).await;
    for viewer in [&stranger, &agent, &poster] {
        let (found, total) = list(viewer, "").await;
        assert_eq!(total, 2);
        let mut got = ids(&found);
        got.sort_unstable();
        let mut want = vec![first.id.as_str(), second.id.as_str()];
        want.sort_unstable();
        assert_eq!(got, want);
        assert!(found.iter().all(|t| t.kind == "bounty" && t.status == "open"));
    }
    let (page, total) = list(&stranger, "?limit=1&page=2").await;
    assert_eq!((page.len(), total), (1, 2));

    let detail: Task = stranger.get(&format!("/api/v1/bounties/{}", second.id)).await.unwrap();
    assert_eq!((detail.title.as_str(), detail.status.as_str()), ("Translate a poem", "open"));
    assert_eq!(detail.price.map(|p| p.amount), Some(150));
    assert_eq!(detail.details["penalty"], 10);
    let unknown = stranger
        .send(Method::GET, "/api/v1/bounties/tsk_01jzzzzzzzzzzzzzzzzzzzzzzz", None, &[])
        .await
        .unwrap();
    assert_error(&unknown, 404, "NOT_FOUND");
    let anon = app.send(None, Method::GET, "/api/v1/bounties", None).await;
    assert_error(&anon, 401, "UNAUTHORIZED");
    let bad = stranger.send(Method::GET, "/api/v1/bounties?status=sleeping", None, &[]).await.unwrap();
    assert_eq!(error_paths(&bad), ["status"]);
}

async fn exactly_one_of_eight_concurrent_claims_wins(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    let mut agents = Vec::new();
    for i in 0..8 {
        let (reg, client) = app.agent(&format!("Racer {i}"), &["writing"]).await;
        agents.push((reg.account.id, client));
    }
    let mut set = tokio::task::JoinSet::new();
    for (id, client) in agents {
        let path = format!("/api/v1/bounties/{}/claim", posted.id);
        set.spawn(async move { (id, client.send(Method::POST, &path, None, &[]).await.unwrap()) });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(joined) = set.join_next().await {
        let (id, reply) = joined.unwrap();
        if reply.status == 200 {
            winners.push((id, reply));
        } else {
            assert_error(&reply, 409, "TASK_ALREADY_CLAIMED");
            losers += 1;
        }
    }
    assert_eq!((winners.len(), losers), (1, 7), "first come, first served");
    let (winner, reply) = winners.pop().unwrap();
    let claimed: Task = reply.data().unwrap();
    assert_eq!(claimed.status, "in_progress");
    assert_eq!(claimed.assignee_id.as_deref(), Some(winner.as_str()));
    assert!(claimed.deadline_at.is_some());
    let seen = poster.task(&posted.id).await.unwrap();
    assert_eq!(seen.assignee_id.as_deref(), Some(winner.as_str()), "the winner holds it");
    let claims = seen.timeline.unwrap().iter().filter(|e| e.event_type == "task.claimed").count();
    assert_eq!(claims, 1, "claimed once");
    assert_eq!(app.pts(&poster).await, (300, 200), "still held once");
}

async fn the_poster_cannot_claim_its_own_bounty(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    assert_error(&claim_raw(&poster, &posted.id).await, 403, "CANNOT_CLAIM_OWN_TASK");
    let seen = poster.task(&posted.id).await.unwrap();
    assert_eq!((seen.status.as_str(), seen.assignee_id.clone()), ("open", None));
    assert_error(&claim_raw(&poster, "tsk_01jzzzzzzzzzzzzzzzzzzzzzzz").await, 404, "NOT_FOUND");
}

async fn delivery_and_acceptance_pay_the_reward_minus_the_fee(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (worker, agent) = app.agent("Scout", &["writing"]).await;
    let (_, stranger) = app.human("Sam").await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    let id = posted.id.clone();

    let claimed = agent.claim_bounty(&id).await.unwrap();
    assert_eq!(claimed.status, "in_progress");
    assert_eq!(claimed.assignee_id.as_deref(), Some(worker.account.id.as_str()));
    assert!(claimed.deadline_at.is_some(), "the claim starts the delivery clock");
    let early = poster.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap();
    assert_error(&early, 400, "TASK_NOT_DELIVERED");

    // The delivery is checked against the bounty's output schema.
    let bad = agent
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{id}/deliver"),
            Some(&json!({"output": {"summary": 5, "words": "four"}})),
            &[],
        )
        .await
        .unwrap();
    let mut paths = error_paths(&bad);
    paths.sort_unstable();
    assert_eq!(paths, ["output/summary", "output/words"]);
    let missing = agent
        .send(Method::POST, &format!("/api/v1/tasks/{id}/deliver"), Some(&json!({"output": {}})), &[])
        .await
        .unwrap();
    assert_eq!(error_paths(&missing), ["output"]);
    let by_stranger = stranger
        .send(Method::POST, &format!("/api/v1/tasks/{id}/deliver"), Some(&json!({"text": "mine"})), &[])
        .await
        .unwrap();
    assert_error(&by_stranger, 404, "NOT_FOUND");

    let delivered = agent.deliver(&id, &good_output()).await.unwrap();
    assert_eq!(delivered.task.status, "delivered");
    let by_worker = agent.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap();
    assert_error(&by_worker, 404, "NOT_REQUESTER");
    let settled = poster.accept(&id).await.unwrap();
    assert_eq!(settled.task.status, "completed");
    assert_eq!((settled.settled_amount, settled.fee, settled.net, settled.refunded), (200, 20, 180, 0));
    assert_eq!(app.pts(&agent).await, (180, 0));
    assert_eq!(app.pts(&poster).await, (300, 0));
    assert_eq!(
        poster.task(&id).await.unwrap().output.and_then(|o| o.output),
        Some(json!({"summary": "It is about cats.", "words": 4}))
    );
    let gone = stranger.send(Method::GET, &format!("/api/v1/bounties/{id}"), None, &[]).await.unwrap();
    assert_error(&gone, 404, "NOT_FOUND");
    let (done, total) = list(&agent, "?status=completed").await;
    assert_eq!((ids(&done), total), (vec![id.as_str()], 1));
    assert_error(
        &poster.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap(),
        400,
        "TASK_FINISHED",
    );
    assert_eq!(app.pts(&agent).await, (180, 0), "paid once");
}

async fn late_delivery_returns_the_penalty_to_the_poster(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (_, agent) = app.agent("Scout", &["writing"]).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    agent.claim_bounty(&posted.id).await.unwrap();
    make_overdue(&app, &posted.id).await;
    agent.deliver(&posted.id, &good_output()).await.unwrap();
    let settled = poster.accept(&posted.id).await.unwrap();
    assert_eq!(settled.task.status, "completed");
    assert_eq!((settled.settled_amount, settled.fee, settled.net, settled.refunded), (150, 15, 135, 50));
    assert_eq!(app.pts(&agent).await, (135, 0));
    assert_eq!(app.pts(&poster).await, (350, 0), "the penalty came back");
    let lines = poster.wallet_transactions(1, 20).await.unwrap();
    assert!(
        lines.iter().any(|l| l.kind == "penalty" && l.amount == 50 && l.bucket == "available"),
        "{lines:?}"
    );
}

async fn cancelling_an_unclaimed_bounty_refunds_it(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (_, stranger) = app.human("Sam").await;
    let (_, agent) = app.agent("Scout", &["writing"]).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    assert_error(&cancel_raw(&stranger, &posted.id).await, 404, "NOT_FOUND");
    assert_eq!(app.pts(&poster).await, (300, 200));

    let cancelled = poster.cancel_bounty(&posted.id).await.unwrap();
    assert_eq!(cancelled.task.status, "cancelled");
    assert_eq!((cancelled.settled_amount, cancelled.refunded), (0, 200));
    assert_eq!(app.pts(&poster).await, (500, 0), "refunded in full");
    assert_eq!(list(&stranger, "").await.1, 0, "no longer open");
    assert_error(&cancel_raw(&poster, &posted.id).await, 400, "TASK_FINISHED");
    // A finished bounty does not exist for anyone but its parties.
    assert_error(&claim_raw(&agent, &posted.id).await, 404, "NOT_FOUND");
    assert_eq!(app.pts(&poster).await, (500, 0), "refunded once");
}

async fn a_claim_cannot_be_taken_back_before_it_is_overdue(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (worker, agent) = app.agent("Scout", &["writing"]).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    agent.claim_bounty(&posted.id).await.unwrap();
    assert_error(&cancel_raw(&poster, &posted.id).await, 400, "CLAIM_NOT_OVERDUE");
    let seen = poster.task(&posted.id).await.unwrap();
    assert_eq!(seen.status, "in_progress");
    assert_eq!(seen.assignee_id.as_deref(), Some(worker.account.id.as_str()));
    assert_eq!(app.pts(&poster).await, (300, 200));
    // Nor by the worker: it is not the poster's to give.
    assert_error(&cancel_raw(&agent, &posted.id).await, 404, "NOT_FOUND");
}

async fn an_overdue_claim_is_taken_back_and_the_bounty_reopens(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (_, slow) = app.agent("Slow", &["writing"]).await;
    let (quick_reg, quick) = app.agent("Quick", &["writing"]).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    let id = posted.id.clone();
    slow.claim_bounty(&id).await.unwrap();
    make_overdue(&app, &id).await;

    let reopened = poster.cancel_bounty(&id).await.unwrap();
    assert_eq!(reopened.task.status, "open");
    assert_eq!((reopened.task.assignee_id.clone(), reopened.task.deadline_at.clone()), (None, None));
    assert_eq!((reopened.settled_amount, reopened.refunded), (0, 0));
    assert_eq!(app.pts(&poster).await, (300, 200), "the reward stays held for the next claimer");
    let types: Vec<String> =
        poster.task(&id).await.unwrap().timeline.unwrap().into_iter().map(|e| e.event_type).collect();
    assert!(types.iter().any(|t| t == "task.reopened"), "{types:?}");
    let (open, _) = list(&quick, "").await;
    assert_eq!(ids(&open), [id.as_str()], "open again for everyone");

    let claimed = quick.claim_bounty(&id).await.unwrap();
    assert_eq!(claimed.assignee_id.as_deref(), Some(quick_reg.account.id.as_str()));
    assert_eq!(claimed.status, "in_progress");
    let deadline = claimed.deadline_at.expect("a new delivery clock");
    assert!(!deadline.starts_with("1970"), "{deadline}");
    let too_late = slow
        .send(Method::POST, &format!("/api/v1/tasks/{id}/deliver"), Some(&json!({"text": "here"})), &[])
        .await
        .unwrap();
    assert_error(&too_late, 404, "NOT_FOUND");
    quick.deliver(&id, &good_output()).await.unwrap();
    let settled = poster.accept(&id).await.unwrap();
    assert_eq!((settled.settled_amount, settled.fee, settled.net, settled.refunded), (200, 20, 180, 0));
    assert_eq!(app.pts(&quick).await, (180, 0));
    assert_eq!(app.pts(&slow).await, (0, 0));
    assert_eq!(app.pts(&poster).await, (300, 0));
}

async fn claimed_bounties_leave_the_open_list(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (_, stranger) = app.human("Sam").await;
    let (_, claimer) = app.agent("Scout", &["writing"]).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    let other =
        poster.post_bounty(&BountyRequest { title: "Another one".into(), ..bounty(100, 0) }).await.unwrap();
    assert_eq!(list(&stranger, "").await.1, 2);
    claimer.claim_bounty(&posted.id).await.unwrap();

    let (open, total) = list(&stranger, "").await;
    assert_eq!((ids(&open), total), (vec![other.id.as_str()], 1), "claimed bounties are not open");
    assert_eq!(list(&stranger, "?status=open").await.1, 1);
    assert_eq!(list(&claimer, "").await.1, 1);
    let hidden =
        stranger.send(Method::GET, &format!("/api/v1/bounties/{}", posted.id), None, &[]).await.unwrap();
    assert_error(&hidden, 404, "NOT_FOUND");
    assert_eq!(list(&stranger, "?status=in_progress").await.1, 0, "not the stranger's");
    assert_eq!(list(&stranger, "?status=all").await.1, 0);

    let (mine, total) = list(&claimer, "?status=in_progress").await;
    assert_eq!((ids(&mine), total), (vec![posted.id.as_str()], 1));
    assert_eq!(mine[0].status, "in_progress");
    let (posted_by_me, total) = list(&poster, "?status=in_progress").await;
    assert_eq!((ids(&posted_by_me), total), (vec![posted.id.as_str()], 1));
    assert_eq!(list(&poster, "?status=all").await.1, 2);
    assert_eq!(list(&claimer, "?status=all").await.1, 1, "only the claimed one is the claimer's");
    let detail: Task = claimer.get(&format!("/api/v1/bounties/{}", posted.id)).await.unwrap();
    assert_eq!(detail.status, "in_progress");
}

/// Anyone can claim an open bounty, so a claimer giving up must not end it for the poster.
async fn a_claimer_giving_up_reopens_the_bounty(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (_, quitter_c) = app.agent("Quitter", &[]).await;
    let (_, other) = app.agent("Stayer", &[]).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    quitter_c.claim_bounty(&posted.id).await.unwrap();
    let gave_up = quitter_c.fail(&posted.id, "too hard").await.unwrap();
    assert_eq!((gave_up.task.status.as_str(), gave_up.task.assignee_id.as_deref()), ("open", None));
    assert!(gave_up.task.deadline_at.is_none());
    assert_eq!((gave_up.refunded, app.pts(&poster).await), (0, (300, 200)), "the reward stays on offer");
    let timeline = poster.task(&posted.id).await.unwrap().timeline.unwrap();
    let reopened = timeline.last().unwrap();
    assert_eq!(
        (reopened.event_type.as_str(), reopened.data["error"].as_str()),
        ("task.reopened", Some("too hard"))
    );
    assert_eq!(
        other.claim_bounty(&posted.id).await.unwrap().status,
        "in_progress",
        "open to the next claimer"
    );
}

/// A claim whose work was delivered cannot be taken back, even past its deadline; and a
/// revision does not make an on-time delivery late.
async fn delivered_work_cannot_be_taken_back_and_a_revision_keeps_it_on_time(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (_, agent) = app.agent("Scout", &[]).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    agent.claim_bounty(&posted.id).await.unwrap();
    agent.deliver(&posted.id, &good_output()).await.unwrap();
    poster.request_revision(&posted.id, Some("More detail")).await.unwrap();
    // The deadline passes after the first delivery, before the second.
    let mut tx = app.store.begin().await.unwrap();
    let mut task = tx.task_for_update(&TaskId::parse(&posted.id).unwrap()).await.unwrap().unwrap();
    let first = task.delivered_at.expect("the first delivery's time is kept");
    task.deadline_at = Some(Timestamp::from_millis(first.millis() + 1));
    tx.update_task(&task).await.unwrap();
    tx.commit().await.unwrap();
    app.advance(std::time::Duration::from_millis(5));
    // Past the claim's deadline, but in a revision: the claim cannot be taken back; the
    // poster may give up only once the revision's own deadline has passed.
    assert_error(&cancel_raw(&poster, &posted.id).await, 400, "REVISION_NOT_OVERDUE");
    agent.deliver(&posted.id, &good_output()).await.unwrap();
    let paid = poster.accept(&posted.id).await.unwrap();
    assert_eq!((paid.settled_amount, paid.fee, paid.net, paid.refunded), (200, 20, 180, 0), "no penalty");
    assert_eq!(app.pts(&poster).await, (300, 0));
}

async fn strangers_see_an_open_bounty_without_its_history(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, poster) = app.funded_human("Paula", 500).await;
    let (_, stranger) = app.human("Sam").await;
    let (_, agent) = app.agent("Scout", &[]).await;
    let posted = poster.post_bounty(&bounty(200, 50)).await.unwrap();
    poster.message(&posted.id, "Private note to whoever claims it").await.unwrap();
    let seen = stranger.task(&posted.id).await.unwrap();
    assert_eq!(seen.status, "open");
    assert!(seen.messages.is_none() && seen.timeline.is_none(), "terms only, no history");
    let own = poster.task(&posted.id).await.unwrap();
    assert_eq!(own.messages.map(|m| m.len()), Some(1));
    agent.claim_bounty(&posted.id).await.unwrap();
    let r = stranger.send(Method::GET, &format!("/api/v1/tasks/{}", posted.id), None, &[]).await.unwrap();
    assert_error(&r, 404, "NOT_FOUND");
}
