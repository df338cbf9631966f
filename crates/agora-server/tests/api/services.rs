//! Services over HTTP: publishing (by the agent or its owner), schemas, search and its sort
//! orders, details and favourites, updates and unpublishing, and runs from the hold to the
//! settlement: claim, progress, delivery checked against the output schema, acceptance,
//! failure, revision and auto-accept.

use agora_client::{
    Client,
    types::{
        DeliverRequest, Favorite, ProfileFields, ProgressRequest, Registered, Service, ServiceRequest, Task,
        TaskResult, UiBlock,
    },
};
use agora_core::ServiceId;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, assert_error, error_paths};

both_backends!(
    agents_and_owners_publish_services,
    invalid_schemas_are_refused_at_publish,
    search_filters_sorts_and_pages,
    details_show_counters_and_favourites,
    favourites_are_idempotent,
    managers_update_and_unpublish_services,
    a_run_holds_the_price_once_per_idempotency_key,
    run_input_is_checked_against_the_schema,
    own_offline_and_unaffordable_runs_are_refused,
    a_run_is_claimed_progressed_delivered_and_accepted,
    the_typed_client_reads_progress_replies,
    a_failed_run_refunds_the_requester,
    a_revision_sends_the_run_back_with_feedback,
    auto_accept_completes_a_delivered_run,
);

const UNKNOWN_SERVICE: &str = "svc_01jzzzzzzzzzzzzzzzzzzzzzzz";

fn input_schema() -> Value {
    json!({
        "type": "object",
        "required": ["prompt"],
        "properties": {"prompt": {"type": "string"}, "n": {"type": "integer", "maximum": 4}},
    })
}

fn output_schema() -> Value {
    json!({
        "type": "object",
        "required": ["url"],
        "properties": {"url": {"type": "string"}, "width": {"type": "integer"}},
    })
}

/// An image service at `price` PTS with input and output schemas.
fn image_service(price: i64) -> ServiceRequest {
    ServiceRequest {
        name: Some("Image maker".into()),
        short_description: Some("Draws a picture from a prompt".into()),
        description: Some("# Images\nAny style.".into()),
        price: Some(price),
        input_schema: Some(input_schema()),
        output_schema: Some(output_schema()),
        ..Default::default()
    }
}

/// A service with no schemas.
fn plain_service(name: &str, short: &str, price: i64) -> ServiceRequest {
    ServiceRequest {
        name: Some(name.into()),
        short_description: Some(short.into()),
        price: Some(price),
        ..Default::default()
    }
}

/// An online agent with the image service published.
async fn agent_with_service(app: &TestApp, price: i64) -> (Registered, Client, Service) {
    let (agent, agent_client) = app.online_agent("Painter", None, None).await;
    let service = agent_client.create_service(&image_service(price)).await.unwrap();
    (agent, agent_client, service)
}

/// Moves the clock past the service's creation, so that the next service is strictly newer
/// (creation times have millisecond resolution).
async fn after_creation_of(app: &TestApp, service: &Service) {
    let created =
        app.store.read().service(&ServiceId::parse(&service.id).unwrap()).await.unwrap().unwrap().created_at;
    app.advance(std::time::Duration::from_millis(2));
    assert!(app.app.now() > created);
}

fn run_path(service_id: &str) -> String {
    format!("/api/v1/services/{service_id}/run")
}

async fn run_raw(client: &Client, service_id: &str, input: Value) -> agora_client::Reply {
    client.send(Method::POST, &run_path(service_id), Some(&json!({"input_data": input})), &[]).await.unwrap()
}

/// The agent takes the next task from its inbox; it must be `task_id`.
async fn claim(agent: &Client, task_id: &str) -> Task {
    let task = agent.inbox(10).await.unwrap().expect("the run is in the inbox");
    assert_eq!(task.id, task_id);
    assert_eq!(task.status, "in_progress");
    task
}

fn good_delivery() -> DeliverRequest {
    DeliverRequest {
        text: Some("Here is your picture.".into()),
        output: Some(json!({"url": "https://cdn.example.com/cat.png", "width": 512})),
        ui_blocks: Some(vec![
            UiBlock { kind: "markdown".into(), content: "**A cat**, as asked.".into(), label: None },
            UiBlock {
                kind: "file".into(),
                content: "https://cdn.example.com/cat.png".into(),
                label: Some("cat.png".into()),
            },
        ]),
        files: None,
    }
}

/// A run of `service_id` by `requester`, taken by `agent`, delivered and accepted.
async fn completed_run(requester: &Client, agent: &Client, service_id: &str) {
    let accepted = requester.run_service(service_id, &json!({})).await.unwrap();
    claim(agent, &accepted.task_id).await;
    agent
        .deliver(&accepted.task_id, &DeliverRequest { text: Some("done".into()), ..Default::default() })
        .await
        .unwrap();
    let result = requester.accept(&accepted.task_id).await.unwrap();
    assert_eq!(result.task.status, "completed");
}

fn names(services: &[Service]) -> Vec<&str> {
    services.iter().map(|s| s.name.as_str()).collect()
}

fn event_types(task: &Task) -> Vec<String> {
    task.timeline
        .as_ref()
        .expect("GET /tasks/{id} has a timeline")
        .iter()
        .map(|e| e.event_type.clone())
        .collect()
}

async fn agents_and_owners_publish_services(b: Backend) {
    let app = TestApp::new(b).await;
    let (agent, agent_client) = app.online_agent("Painter", None, None).await;
    let body = serde_json::to_value(image_service(100)).unwrap();
    let reply = agent_client.send(Method::POST, "/api/v1/services", Some(&body), &[]).await.unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text);
    let svc: Service = reply.data().unwrap();
    assert!(svc.id.starts_with("svc_"));
    assert_eq!(svc.agent_id, agent.account.id, "an agent publishes its own service");
    assert_eq!(svc.agent_name.as_deref(), Some("Painter"));
    assert_eq!((svc.name.as_str(), svc.version.as_str()), ("Image maker", "v1.0.0"));
    assert_eq!((svc.price, svc.currency.as_str()), (100, "PTS"));
    assert_eq!(svc.input_schema, input_schema());
    assert_eq!(svc.output_schema, output_schema());
    assert!(svc.published);
    assert_eq!(svc.status, "online");
    assert_eq!((svc.paid_count, svc.favorite_count, svc.total_revenue), (0, 0, 0));
    assert_eq!(svc.favorite, Some(false));
    assert_eq!(app.client.service(&svc.id).await.unwrap().name, "Image maker", "public once published");

    // A human publishes for an agent it created.
    let (owner, owner_client) = app.human("Olga").await;
    let created = owner_client
        .create_agent(&ProfileFields { name: Some("Olga's bot".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(created.agent.owner_id.as_deref(), Some(owner.account.id.as_str()));
    let req =
        ServiceRequest { agent_id: Some(created.agent.id.clone()), ..plain_service("Summaries", "", 40) };
    let owned = owner_client.create_service(&req).await.unwrap();
    assert_eq!(owned.agent_id, created.agent.id);
    assert_eq!(owned.agent_name.as_deref(), Some("Olga's bot"));
    assert_eq!(owned.status, "offline", "the new agent has never been seen");
    assert_eq!((owned.input_schema.clone(), owned.output_schema.clone()), (json!({}), json!({})));

    // A human must name its agent, and only one of its own.
    let no_agent = owner_client
        .send(Method::POST, "/api/v1/services", Some(&json!({"name": "X", "price": 1})), &[])
        .await
        .unwrap();
    assert_eq!(error_paths(&no_agent), ["agent_id"]);
    let (_, stranger) = app.human("Sam").await;
    let someone_elses = stranger
        .send(
            Method::POST,
            "/api/v1/services",
            Some(&json!({"agent_id": created.agent.id, "name": "X", "price": 1})),
            &[],
        )
        .await
        .unwrap();
    assert_error(&someone_elses, 404, "NOT_FOUND");
    let missing = agent_client.send(Method::POST, "/api/v1/services", Some(&json!({})), &[]).await.unwrap();
    assert_eq!(error_paths(&missing), ["name", "price"]);
    let negative = agent_client
        .send(Method::POST, "/api/v1/services", Some(&json!({"name": "X", "price": -1})), &[])
        .await
        .unwrap();
    assert_eq!(error_paths(&negative), ["price"]);
    let anon = app.send(None, Method::POST, "/api/v1/services", Some(json!({"name": "X", "price": 1}))).await;
    assert_error(&anon, 401, "UNAUTHORIZED");

    let all = app.client.services("status=all").await.unwrap();
    let mut got = names(&all);
    got.sort_unstable();
    assert_eq!(got, ["Image maker", "Summaries"], "refused requests published nothing");
}

async fn invalid_schemas_are_refused_at_publish(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, agent) = app.online_agent("Painter", None, None).await;
    let cases = [
        (json!({"name": "X", "price": 1, "input_schema": {"type": 5}}), "input_schema"),
        (json!({"name": "X", "price": 1, "output_schema": {"type": "no-such-type"}}), "output_schema"),
        (json!({"name": "X", "price": 1, "input_schema": "string"}), "input_schema"),
        (
            json!({"name": "X", "price": 1, "output_schema": {"$ref": "https://example.com/s.json"}}),
            "output_schema",
        ),
    ];
    for (body, prefix) in cases {
        let reply = agent.send(Method::POST, "/api/v1/services", Some(&body), &[]).await.unwrap();
        let paths = error_paths(&reply);
        assert!(!paths.is_empty() && paths.iter().all(|p| p.starts_with(prefix)), "{body}: {paths:?}");
    }
    let reply = app.send(None, Method::GET, "/api/v1/services?status=all", None).await;
    assert_eq!(reply.json["pagination"]["total"], 0, "nothing was published");
}

async fn search_filters_sorts_and_pages(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, ada) = app.online_agent("Ada", None, None).await;
    let (_, bea) = app.online_agent("Bea", None, None).await;
    let logo = ada.create_service(&plain_service("Logo designer", "Vector logos", 300)).await.unwrap();
    after_creation_of(&app, &logo).await;
    let poem = ada.create_service(&plain_service("Poem writer", "Writes short poems", 100)).await.unwrap();
    after_creation_of(&app, &poem).await;
    let translator =
        ada.create_service(&plain_service("Translator", "Turns any text into French", 200)).await.unwrap();
    after_creation_of(&app, &translator).await;
    bea.create_service(&plain_service("Poem reviewer", "Critiques verse", 50)).await.unwrap();
    bea.heartbeat(true).await.unwrap();

    // Online (the default) leaves out the signed-off agent's service; newest first.
    let online = app.send(None, Method::GET, "/api/v1/services", None).await;
    assert_eq!(online.status, 200, "{}", online.text);
    assert_eq!(online.json["pagination"]["total"], 3);
    let got: Vec<Service> = online.data().unwrap();
    assert_eq!(names(&got), ["Translator", "Poem writer", "Logo designer"]);
    assert!(got.iter().all(|s| s.status == "online" && s.favorite.is_none()));
    assert_eq!(names(&app.client.services("status=online").await.unwrap()), names(&got));
    let all = app.client.services("status=all").await.unwrap();
    assert_eq!(names(&all), ["Poem reviewer", "Translator", "Poem writer", "Logo designer"]);
    assert_eq!(all[0].status, "offline");

    // Keywords match the name or descriptions, case-insensitively.
    assert_eq!(
        names(&app.client.services("q=poem&status=all").await.unwrap()),
        ["Poem reviewer", "Poem writer"]
    );
    assert_eq!(names(&app.client.services("q=POEM").await.unwrap()), ["Poem writer"]);
    assert_eq!(names(&app.client.services("q=french").await.unwrap()), ["Translator"]);
    assert!(app.client.services("q=spreadsheet&status=all").await.unwrap().is_empty());

    let by_price = app.client.services("status=all&sort=price_asc").await.unwrap();
    assert_eq!(names(&by_price), ["Poem reviewer", "Poem writer", "Translator", "Logo designer"]);
    let by_price = app.client.services("status=all&sort=price_desc").await.unwrap();
    assert_eq!(names(&by_price), ["Logo designer", "Translator", "Poem writer", "Poem reviewer"]);
    assert_eq!(
        names(&app.client.services("sort=newest&status=all").await.unwrap()),
        ["Poem reviewer", "Translator", "Poem writer", "Logo designer"]
    );

    // Popular: most paid runs first, then newest.
    let (_, requester) = app.funded_human("Rita", 1000).await;
    completed_run(&requester, &ada, &poem.id).await;
    completed_run(&requester, &ada, &poem.id).await;
    completed_run(&requester, &ada, &logo.id).await;
    let popular = app.client.services("status=all&sort=popular").await.unwrap();
    assert_eq!(names(&popular), ["Poem writer", "Logo designer", "Poem reviewer", "Translator"]);
    assert_eq!(popular.iter().map(|s| s.paid_count).collect::<Vec<_>>(), [2, 1, 0, 0]);

    // Pages.
    let first = app.send(None, Method::GET, "/api/v1/services?status=all&limit=3&page=1", None).await;
    assert_eq!(first.json["pagination"], json!({"page": 1, "limit": 3, "total": 4, "has_more": true}));
    assert_eq!(names(&first.data::<Vec<Service>>().unwrap()), ["Poem reviewer", "Translator", "Poem writer"]);
    let second = app.send(None, Method::GET, "/api/v1/services?status=all&limit=3&page=2", None).await;
    assert_eq!(second.json["pagination"], json!({"page": 2, "limit": 3, "total": 4, "has_more": false}));
    assert_eq!(names(&second.data::<Vec<Service>>().unwrap()), ["Logo designer"]);

    let bad = app.send(None, Method::GET, "/api/v1/services?status=busy&sort=cheapest", None).await;
    assert_eq!(error_paths(&bad), ["status", "sort"]);
}

async fn details_show_counters_and_favourites(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, agent, svc) = agent_with_service(&app, 100).await;
    let (_, ann) = app.funded_human("Ann", 100).await;
    let (_, bob) = app.human("Bob").await;
    let (_, carol) = app.human("Carol").await;
    let path = format!("/api/v1/services/{}/favorite", svc.id);
    ann.post::<Favorite>(&path, &json!({})).await.unwrap();
    bob.post::<Favorite>(&path, &json!({})).await.unwrap();
    let accepted = ann.run_service(&svc.id, &json!({"prompt": "a cat"})).await.unwrap();
    claim(&agent, &accepted.task_id).await;
    agent.deliver(&accepted.task_id, &good_delivery()).await.unwrap();
    ann.accept(&accepted.task_id).await.unwrap();

    let for_ann = ann.service(&svc.id).await.unwrap();
    assert_eq!((for_ann.paid_count, for_ann.favorite_count, for_ann.total_revenue), (1, 2, 100));
    assert_eq!(for_ann.favorite, Some(true));
    assert_eq!(carol.service(&svc.id).await.unwrap().favorite, Some(false), "signed in, not marked");
    let anon = app.client.service(&svc.id).await.unwrap();
    assert_eq!(anon.favorite, None, "anonymous callers get no mark");
    assert_eq!((anon.paid_count, anon.favorite_count, anon.total_revenue), (1, 2, 100));
    assert_eq!(anon.status, "online");

    let missing = app.send(None, Method::GET, &format!("/api/v1/services/{UNKNOWN_SERVICE}"), None).await;
    assert_error(&missing, 404, "NOT_FOUND");
    let malformed = app.send(None, Method::GET, "/api/v1/services/not-an-id", None).await;
    assert_error(&malformed, 404, "NOT_FOUND");
}

async fn favourites_are_idempotent(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, _, svc) = agent_with_service(&app, 100).await;
    let (_, ann) = app.human("Ann").await;
    let (_, bob) = app.human("Bob").await;
    let path = format!("/api/v1/services/{}/favorite", svc.id);
    for _ in 0..2 {
        let marked: Favorite = ann.post(&path, &json!({})).await.unwrap();
        assert_eq!(
            (marked.service_id.as_str(), marked.favorite, marked.favorite_count),
            (svc.id.as_str(), true, 1)
        );
    }
    let marked: Favorite = bob.post(&path, &json!({})).await.unwrap();
    assert_eq!(marked.favorite_count, 2);
    for _ in 0..2 {
        let unmarked: Favorite = ann.delete(&path).await.unwrap();
        assert_eq!((unmarked.favorite, unmarked.favorite_count), (false, 1));
    }
    let for_ann = ann.service(&svc.id).await.unwrap();
    assert_eq!((for_ann.favorite, for_ann.favorite_count), (Some(false), 1));
    assert_eq!(bob.service(&svc.id).await.unwrap().favorite, Some(true));

    let anon = app.send(None, Method::POST, &path, Some(json!({}))).await;
    assert_error(&anon, 401, "UNAUTHORIZED");
    let unknown = ann
        .send(Method::POST, &format!("/api/v1/services/{UNKNOWN_SERVICE}/favorite"), None, &[])
        .await
        .unwrap();
    assert_error(&unknown, 404, "NOT_FOUND");
    assert_eq!(app.client.service(&svc.id).await.unwrap().favorite_count, 1);
}

async fn managers_update_and_unpublish_services(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, owner) = app.human("Olga").await;
    let created = owner
        .create_agent(&ProfileFields { name: Some("Olga's bot".into()), ..Default::default() })
        .await
        .unwrap();
    let bot = app.client.with_token(created.api_key.clone());
    bot.heartbeat(false).await.unwrap();
    let req = ServiceRequest { agent_id: Some(created.agent.id.clone()), ..image_service(100) };
    let svc = owner.create_service(&req).await.unwrap();
    let path = format!("/api/v1/services/{}", svc.id);

    // The owner and the agent both manage it; absent fields are kept.
    let updated = owner
        .update_service(
            &svc.id,
            &ServiceRequest {
                price: Some(150),
                description: Some("Now in colour.".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((updated.price, updated.description.as_str()), (150, "Now in colour."));
    assert_eq!((updated.name.as_str(), updated.input_schema.clone()), ("Image maker", input_schema()));
    let updated = bot
        .update_service(&svc.id, &ServiceRequest { version: Some("v2.0.0".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!((updated.version.as_str(), updated.price), ("v2.0.0", 150));
    assert_eq!(app.client.service(&svc.id).await.unwrap().price, 150);

    // Anyone else: 404, and nothing changes.
    let (_, stranger) = app.funded_human("Sam", 500).await;
    let theirs = stranger.send(Method::PATCH, &path, Some(&json!({"price": 1})), &[]).await.unwrap();
    assert_error(&theirs, 404, "NOT_FOUND");
    let delete = stranger.send(Method::DELETE, &path, None, &[]).await.unwrap();
    assert_error(&delete, 404, "NOT_FOUND");
    let move_it =
        owner.send(Method::PATCH, &path, Some(&json!({"agent_id": created.agent.id})), &[]).await.unwrap();
    assert_eq!(error_paths(&move_it), ["agent_id"]);
    let negative = owner.send(Method::PATCH, &path, Some(&json!({"price": -5})), &[]).await.unwrap();
    assert_eq!(error_paths(&negative), ["price"]);
    let bad_schema =
        owner.send(Method::PATCH, &path, Some(&json!({"output_schema": {"type": 7}})), &[]).await.unwrap();
    assert!(error_paths(&bad_schema).iter().all(|p| p.starts_with("output_schema")));
    let unknown = owner
        .send(Method::PATCH, &format!("/api/v1/services/{UNKNOWN_SERVICE}"), Some(&json!({"price": 1})), &[])
        .await
        .unwrap();
    assert_error(&unknown, 404, "NOT_FOUND");
    let now = app.client.service(&svc.id).await.unwrap();
    assert_eq!((now.price, now.version.as_str()), (150, "v2.0.0"));
    assert_eq!(app.client.services("").await.unwrap().len(), 1, "listed while published");

    // Unpublished: hidden from search and from everyone but its managers; runs are 404.
    let gone: Service = owner.delete(&path).await.unwrap();
    assert!(!gone.published);
    assert!(app.client.services("status=all").await.unwrap().is_empty());
    assert!(app.client.services("q=image").await.unwrap().is_empty());
    assert_error(&app.send(None, Method::GET, &path, None).await, 404, "NOT_FOUND");
    assert_error(&stranger.send(Method::GET, &path, None, &[]).await.unwrap(), 404, "NOT_FOUND");
    assert!(!owner.service(&svc.id).await.unwrap().published, "its managers still see it");
    assert!(!bot.service(&svc.id).await.unwrap().published);
    let run = run_raw(&stranger, &svc.id, json!({"prompt": "a cat"})).await;
    assert_error(&run, 404, "NOT_FOUND");
    assert_eq!(app.pts(&stranger).await, (500, 0), "nothing held");

    // Publishing it again brings it back.
    let back = owner
        .update_service(&svc.id, &ServiceRequest { published: Some(true), ..Default::default() })
        .await
        .unwrap();
    assert!(back.published);
    assert_eq!(names(&app.client.services("").await.unwrap()), ["Image maker"]);
    let run = run_raw(&stranger, &svc.id, json!({"prompt": "a cat"})).await;
    assert_eq!(run.status, 202, "{}", run.text);
    assert_eq!(app.pts(&stranger).await, (350, 150), "the current price is held");
}

async fn a_run_holds_the_price_once_per_idempotency_key(b: Backend) {
    let app = TestApp::new(b).await;
    let (agent, _, svc) = agent_with_service(&app, 100).await;
    let (ann, requester) = app.funded_human("Ann", 250).await;
    let path = run_path(&svc.id);
    let body = json!({"input_data": {"prompt": "a cat", "n": 2}});
    let first =
        requester.send(Method::POST, &path, Some(&body), &[("idempotency-key", "run-1")]).await.unwrap();
    assert_eq!(first.status, 202, "{}", first.text);
    let task_id = first.json["data"]["task_id"].as_str().unwrap().to_owned();
    assert!(task_id.starts_with("tsk_"));
    assert_eq!(first.json["data"]["status"], "queued");
    assert_eq!(first.json["data"]["status_url"], format!("/api/v1/tasks/{task_id}"));
    assert_eq!(first.json["data"]["service_id"], svc.id.as_str());
    assert_eq!(first.json["data"]["price"], json!({"amount": 100, "currency": "PTS"}));
    assert_eq!(app.pts(&requester).await, (150, 100), "the price is held");

    let again =
        requester.send(Method::POST, &path, Some(&body), &[("idempotency-key", "run-1")]).await.unwrap();
    assert_eq!(again.status, 202);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json, first.json, "the first response, replayed");
    let other = json!({"input_data": {"prompt": "a dog"}});
    let reused =
        requester.send(Method::POST, &path, Some(&other), &[("idempotency-key", "run-1")]).await.unwrap();
    assert_error(&reused, 409, "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(app.pts(&requester).await, (150, 100), "held once");
    let mine = requester.tasks("role=requester").await.unwrap();
    assert_eq!(mine.len(), 1, "one run");

    let task = requester.task(&task_id).await.unwrap();
    assert_eq!((task.kind.as_str(), task.status.as_str()), ("service", "queued"));
    assert_eq!(task.requester_id, ann.account.id);
    assert_eq!(task.assignee_id.as_deref(), Some(agent.account.id.as_str()));
    assert_eq!(task.service_id.as_deref(), Some(svc.id.as_str()));
    assert_eq!(task.input, json!({"prompt": "a cat", "n": 2}));
    assert_eq!(task.price.as_ref().map(|p| p.amount), Some(100));
    assert!(task.hold_id.is_some());
    assert_eq!(task.details["output_schema"], output_schema(), "the run keeps the terms it started with");

    // Another key is another run.
    let second =
        requester.send(Method::POST, &path, Some(&body), &[("idempotency-key", "run-2")]).await.unwrap();
    assert_eq!(second.status, 202, "{}", second.text);
    assert_ne!(second.json["data"]["task_id"], first.json["data"]["task_id"]);
    assert_eq!(app.pts(&requester).await, (50, 200));
}

async fn run_input_is_checked_against_the_schema(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, _, svc) = agent_with_service(&app, 100).await;
    let (_, requester) = app.funded_human("Ann", 100).await;
    let wrong = run_raw(&requester, &svc.id, json!({"prompt": 5, "n": 9})).await;
    let mut paths = error_paths(&wrong);
    paths.sort_unstable();
    assert_eq!(paths, ["input_data/n", "input_data/prompt"]);
    let missing = run_raw(&requester, &svc.id, json!({"n": 1})).await;
    assert_eq!(error_paths(&missing), ["input_data"], "a missing required property is the document's fault");
    let not_an_object = run_raw(&requester, &svc.id, json!([1, 2])).await;
    assert_eq!(error_paths(&not_an_object), ["input_data"]);
    let no_input = requester.send(Method::POST, &run_path(&svc.id), Some(&json!({})), &[]).await.unwrap();
    assert_error(&no_input, 422, "VALIDATION_ERROR");
    assert_eq!(app.pts(&requester).await, (100, 0), "refused runs hold nothing");
    assert!(requester.tasks("").await.unwrap().is_empty());
}

async fn own_offline_and_unaffordable_runs_are_refused(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, agent, svc) = agent_with_service(&app, 100).await;
    let own = run_raw(&agent, &svc.id, json!({"prompt": "me"})).await;
    assert_error(&own, 403, "OWN_SERVICE");

    // The owner of the agent cannot run it either.
    let (_, owner) = app.funded_human("Olga", 500).await;
    let created = owner
        .create_agent(&ProfileFields { name: Some("Olga's bot".into()), ..Default::default() })
        .await
        .unwrap();
    let req =
        ServiceRequest { agent_id: Some(created.agent.id.clone()), ..plain_service("Summaries", "", 40) };
    let owned = owner.create_service(&req).await.unwrap();
    let by_owner = run_raw(&owner, &owned.id, json!({})).await;
    assert_error(&by_owner, 403, "OWN_SERVICE");
    assert_eq!(app.pts(&owner).await, (500, 0));

    // An agent never seen, or signed off, is offline.
    let (_, ann) = app.funded_human("Ann", 100).await;
    let never_seen = run_raw(&ann, &owned.id, json!({})).await;
    assert_error(&never_seen, 503, "SERVICE_OFFLINE");
    agent.heartbeat(true).await.unwrap();
    let offline = run_raw(&ann, &svc.id, json!({"prompt": "a cat"})).await;
    assert_error(&offline, 503, "SERVICE_OFFLINE");
    assert_eq!(app.client.service(&svc.id).await.unwrap().status, "offline");
    assert_eq!(app.pts(&ann).await, (100, 0), "nothing held for an offline agent");
    agent.heartbeat(false).await.unwrap();

    // Not enough money.
    let (_, poor) = app.funded_human("Pat", 99).await;
    let short = run_raw(&poor, &svc.id, json!({"prompt": "a cat"})).await;
    assert_error(&short, 402, "INSUFFICIENT_FUNDS");
    assert_eq!(app.pts(&poor).await, (99, 0));
    let (_, broke) = app.human("Bill").await;
    assert_error(&run_raw(&broke, &svc.id, json!({"prompt": "a cat"})).await, 402, "INSUFFICIENT_FUNDS");
    assert!(poor.tasks("").await.unwrap().is_empty());

    // Unknown services.
    assert_error(&run_raw(&ann, UNKNOWN_SERVICE, json!({})).await, 404, "NOT_FOUND");
    assert_error(&run_raw(&ann, "svc_nope", json!({})).await, 404, "NOT_FOUND");

    // Back online, the same run goes through.
    let ok = run_raw(&ann, &svc.id, json!({"prompt": "a cat"})).await;
    assert_eq!(ok.status, 202, "{}", ok.text);
    assert_eq!(app.pts(&ann).await, (0, 100));
}

async fn a_run_is_claimed_progressed_delivered_and_accepted(b: Backend) {
    let app = TestApp::new(b).await;
    let (agent, agent_client, svc) = agent_with_service(&app, 100).await;
    let (ann, requester) = app.funded_human("Ann", 100).await;
    let (_, stranger) = app.human("Sam").await;
    let accepted = requester.run_service(&svc.id, &json!({"prompt": "a cat"})).await.unwrap();
    let id = accepted.task_id.clone();
    assert_eq!(app.pts(&requester).await, (0, 100));
    let too_early =
        requester.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap();
    assert_error(&too_early, 400, "TASK_NOT_DELIVERED");

    let claimed = claim(&agent_client, &id).await;
    assert_eq!(claimed.kind, "service");
    assert_eq!(claimed.input, json!({"prompt": "a cat"}));
    assert!(claimed.lease_expires_at.is_some(), "a claimed run is leased");
    assert!(agent_client.inbox(0).await.unwrap().is_none(), "nothing else is waiting");
    let still_early =
        requester.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap();
    assert_error(&still_early, 400, "TASK_NOT_DELIVERED");

    // Progress shows on the task.
    let report = json!({"percent": 40, "eta_seconds": 30, "current_step": "sketching"});
    let progress = agent_client
        .send(Method::POST, &format!("/api/v1/tasks/{id}/progress"), Some(&report), &[])
        .await
        .unwrap();
    assert_eq!(progress.status, 200, "{}", progress.text);
    let seen = requester.task(&id).await.unwrap();
    assert_eq!(seen.status, "in_progress");
    let p = seen.progress.expect("progress is shown");
    assert_eq!((p.percent, p.eta_seconds, p.current_step.as_deref()), (40, Some(30), Some("sketching")));
    let by_requester = requester
        .send(Method::POST, &format!("/api/v1/tasks/{id}/progress"), Some(&report), &[])
        .await
        .unwrap();
    assert_error(&by_requester, 404, "NOT_ASSIGNEE");

    // The delivery is checked against the output schema.
    let bad = DeliverRequest { output: Some(json!({"width": "wide"})), ..Default::default() };
    let reply = agent_client
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{id}/deliver"),
            Some(&serde_json::to_value(&bad).unwrap()),
            &[],
        )
        .await
        .unwrap();
    let mut paths = error_paths(&reply);
    paths.sort_unstable();
    assert_eq!(paths, ["output", "output/width"]);
    let text_only = DeliverRequest { text: Some("no output".into()), ..Default::default() };
    let reply = agent_client
        .send(
            Method::POST,
            &format!("/api/v1/tasks/{id}/deliver"),
            Some(&serde_json::to_value(&text_only).unwrap()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(error_paths(&reply), ["output"], "the schema requires output");
    assert_eq!(requester.task(&id).await.unwrap().status, "in_progress", "refused deliveries change nothing");

    let delivered = agent_client.deliver(&id, &good_delivery()).await.unwrap();
    assert_eq!(delivered.task.status, "delivered");
    assert_eq!((delivered.settled_amount, delivered.fee, delivered.net, delivered.refunded), (0, 0, 0, 0));
    assert!(delivered.task.auto_accept_at.is_some());
    assert_eq!(app.pts(&requester).await, (0, 100), "still held until accepted");

    let seen = requester.task(&id).await.unwrap();
    assert_eq!(seen.status, "delivered");
    assert!(seen.delivered_at.is_some());
    assert!(seen.lease_expires_at.is_none(), "a delivered run is no longer leased");
    let output = seen.output.clone().expect("the delivery is shown");
    assert_eq!(output.text.as_deref(), Some("Here is your picture."));
    assert_eq!(output.output, Some(json!({"url": "https://cdn.example.com/cat.png", "width": 512})));
    assert_eq!(Some(output.ui_blocks), good_delivery().ui_blocks);
    let types = event_types(&seen);
    for expected in
        ["task.created", "task.assigned", "payment.held", "task.claimed", "task.progress", "task.delivered"]
    {
        assert!(types.iter().any(|t| t == expected), "{expected} missing from {types:?}");
    }
    let lifecycle: Vec<&str> = types.iter().map(String::as_str).filter(|t| t.starts_with("task.")).collect();
    assert_eq!(
        lifecycle,
        ["task.created", "task.assigned", "task.claimed", "task.progress", "task.delivered"]
    );
    let task_seqs: Vec<i64> = seen.timeline.as_ref().unwrap().iter().map(|e| e.task_seq).collect();
    assert_eq!(task_seqs, (1..=i64::try_from(task_seqs.len()).unwrap()).collect::<Vec<_>>());
    assert_eq!(agent_client.task(&id).await.unwrap().status, "delivered", "the agent sees its task");

    // Only the requester accepts; strangers do not even see the task.
    let by_agent =
        agent_client.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap();
    assert_error(&by_agent, 404, "NOT_REQUESTER");
    assert_error(
        &stranger.send(Method::GET, &format!("/api/v1/tasks/{id}"), None, &[]).await.unwrap(),
        404,
        "NOT_FOUND",
    );
    let by_stranger =
        stranger.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap();
    assert_error(&by_stranger, 404, "NOT_FOUND");

    let settled: TaskResult = requester.accept(&id).await.unwrap();
    assert_eq!(settled.task.status, "completed");
    assert_eq!((settled.settled_amount, settled.fee, settled.net, settled.refunded), (100, 10, 90, 0));
    assert_eq!(app.pts(&agent_client).await, (90, 0));
    assert_eq!(app.pts(&requester).await, (0, 0));
    let after = app.client.service(&svc.id).await.unwrap();
    assert_eq!((after.paid_count, after.total_revenue), (1, 100));
    assert_eq!(app.client.agent(&agent.account.id).await.unwrap().counters.completed, 1);
    let again = requester.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap();
    assert_error(&again, 400, "TASK_FINISHED");
    assert_eq!(app.pts(&agent_client).await, (90, 0), "paid once");
    let done = requester.task(&id).await.unwrap();
    assert_eq!(done.requester_id, ann.account.id);
    let types = event_types(&done);
    assert!(types.iter().any(|t| t == "task.completed"), "{types:?}");
    assert!(types.iter().any(|t| t == "payment.released"), "{types:?}");
}

/// `Client::progress` reads the reply of `POST /tasks/{id}/progress`.
async fn the_typed_client_reads_progress_replies(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, agent, svc) = agent_with_service(&app, 100).await;
    let (_, requester) = app.funded_human("Ann", 100).await;
    let accepted = requester.run_service(&svc.id, &json!({"prompt": "a cat"})).await.unwrap();
    claim(&agent, &accepted.task_id).await;
    let report = ProgressRequest { percent: 75, eta_seconds: None, current_step: Some("colouring".into()) };
    let task = agent.progress(&accepted.task_id, &report).await.expect("the typed client reads the reply");
    assert_eq!(task.task.progress.map(|p| p.percent), Some(75));
}

async fn a_failed_run_refunds_the_requester(b: Backend) {
    let app = TestApp::new(b).await;
    let (agent, agent_client, svc) = agent_with_service(&app, 100).await;
    let (_, requester) = app.funded_human("Ann", 150).await;
    let accepted = requester.run_service(&svc.id, &json!({"prompt": "a cat"})).await.unwrap();
    let id = accepted.task_id;
    claim(&agent_client, &id).await;
    assert_eq!(app.pts(&requester).await, (50, 100));
    let by_requester = requester
        .send(Method::POST, &format!("/api/v1/tasks/{id}/fail"), Some(&json!({"error": "no"})), &[])
        .await
        .unwrap();
    assert_error(&by_requester, 404, "NOT_ASSIGNEE");

    let failed = agent_client.fail(&id, "the model crashed").await.unwrap();
    assert_eq!(failed.task.status, "failed");
    assert_eq!((failed.settled_amount, failed.fee, failed.net, failed.refunded), (0, 0, 0, 100));
    assert_eq!(failed.task.details["error"], "the model crashed");
    assert_eq!(app.pts(&requester).await, (150, 0), "refunded in full");
    assert_eq!(app.pts(&agent_client).await, (0, 0));
    let svc_after = app.client.service(&svc.id).await.unwrap();
    assert_eq!((svc_after.paid_count, svc_after.total_revenue), (0, 0));
    assert_eq!(app.client.agent(&agent.account.id).await.unwrap().counters.failed, 1);
    let types = event_types(&requester.task(&id).await.unwrap());
    assert!(
        types.iter().any(|t| t == "task.failed") && types.iter().any(|t| t == "payment.refunded"),
        "{types:?}"
    );

    let again = agent_client
        .send(Method::POST, &format!("/api/v1/tasks/{id}/fail"), Some(&json!({"error": "again"})), &[])
        .await
        .unwrap();
    assert_error(&again, 400, "TASK_FINISHED");
    let deliver = agent_client
        .send(Method::POST, &format!("/api/v1/tasks/{id}/deliver"), Some(&json!({"text": "late"})), &[])
        .await
        .unwrap();
    assert_error(&deliver, 400, "TASK_FINISHED");
    assert_eq!(app.pts(&requester).await, (150, 0), "refunded once");
}

async fn a_revision_sends_the_run_back_with_feedback(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, agent, svc) = agent_with_service(&app, 100).await;
    let (ann, requester) = app.funded_human("Ann", 100).await;
    let accepted = requester.run_service(&svc.id, &json!({"prompt": "a cat"})).await.unwrap();
    let id = accepted.task_id;
    claim(&agent, &id).await;
    let path = format!("/api/v1/tasks/{id}/revision");
    let not_yet = requester.send(Method::POST, &path, Some(&json!({})), &[]).await.unwrap();
    assert_error(&not_yet, 400, "TASK_NOT_DELIVERED");
    agent.deliver(&id, &good_delivery()).await.unwrap();
    let by_agent = agent.send(Method::POST, &path, Some(&json!({"feedback": "mine"})), &[]).await.unwrap();
    assert_error(&by_agent, 404, "NOT_REQUESTER");

    let back = requester.request_revision(&id, Some("Make the cat blue.")).await.unwrap();
    assert_eq!(back.task.status, "in_progress");
    assert_eq!((back.settled_amount, back.refunded), (0, 0));
    let seen = requester.task(&id).await.unwrap();
    assert_eq!(seen.status, "in_progress");
    assert!(seen.auto_accept_at.is_none(), "nothing to auto-accept until it is delivered again");
    assert!(seen.delivered_at.is_some(), "the first delivery's time is kept");
    assert!(seen.lease_expires_at.is_none(), "a revision has no lease: nothing expires and refunds it");
    let messages = seen.messages.clone().expect("GET /tasks/{id} has messages");
    assert_eq!(messages.len(), 1);
    assert_eq!(
        (messages[0].body.as_str(), messages[0].author_id.as_str()),
        ("Make the cat blue.", ann.account.id.as_str())
    );
    assert!(event_types(&seen).iter().any(|t| t == "task.revision_requested"));
    assert_eq!(app.pts(&requester).await, (0, 100), "still held");

    // The agent delivers again and is paid once accepted.
    let mut blue = good_delivery();
    blue.output = Some(json!({"url": "https://cdn.example.com/blue-cat.png"}));
    assert_eq!(agent.deliver(&id, &blue).await.unwrap().task.status, "delivered");
    let settled = requester.accept(&id).await.unwrap();
    assert_eq!((settled.settled_amount, settled.fee, settled.net), (100, 10, 90));
    assert_eq!(
        requester.task(&id).await.unwrap().output.and_then(|o| o.output),
        Some(json!({"url": "https://cdn.example.com/blue-cat.png"}))
    );
    assert_eq!(app.pts(&agent).await, (90, 0));
}

async fn auto_accept_completes_a_delivered_run(b: Backend) {
    let app = TestApp::new(b).await;
    let (_, agent, svc) = agent_with_service(&app, 100).await;
    let (ann, requester) = app.funded_human("Ann", 100).await;
    let accepted = requester.run_service(&svc.id, &json!({"prompt": "a cat"})).await.unwrap();
    let id = accepted.task_id;
    claim(&agent, &id).await;
    let delivered = agent.deliver(&id, &good_delivery()).await.unwrap();
    assert_eq!(delivered.task.status, "delivered");

    // Not before its time: the timer is durable background work that has not come due.
    assert_eq!(app.run_background().await.done, 0);
    assert_eq!(requester.task(&id).await.unwrap().status, "delivered");
    app.advance(std::time::Duration::from_secs(72 * 3600 + 1));
    assert_eq!(app.run_background().await.done, 1);
    let requester = app.sign_in_again(&ann).await;
    let done = requester.task(&id).await.unwrap();
    assert_eq!(done.status, "completed");
    assert!(done.auto_accept_at.is_none());
    let completed =
        done.timeline.as_ref().unwrap().iter().find(|e| e.event_type == "task.completed").unwrap();
    assert_eq!(completed.data["auto"], true, "the system accepted it");
    assert_eq!(completed.actor_id, None);
    assert_eq!(app.pts(&agent).await, (90, 0));
    assert_eq!(app.pts(&requester).await, (0, 0));
    let svc_after = app.client.service(&svc.id).await.unwrap();
    assert_eq!((svc_after.paid_count, svc_after.total_revenue), (1, 100));
    let late = requester.send(Method::POST, &format!("/api/v1/tasks/{id}/accept"), None, &[]).await.unwrap();
    assert_error(&late, 400, "TASK_FINISHED");
}
