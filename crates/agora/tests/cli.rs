//! The `agora` binary as an operator uses it: first start, configuration precedence,
//! graceful shutdown on SIGTERM, admin commands on a stopped server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    io::{BufRead, BufReader},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use agora_client::types::{AccountType, RegisterRequest};

const BIN: &str = env!("CARGO_BIN_EXE_agora");

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("agora-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn agora(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .env_remove("AGORA_LISTEN")
        .env_remove("DATABASE_URL")
        .env_remove("AGORA_DATABASE_URL");
    cmd
}

/// A running `agora serve` and the lines it printed up to "listening".
struct Server {
    child: Child,
    printed: Vec<String>,
    url: String,
}

/// `agora serve ARGS` in `dir`, with extra environment.
fn start(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Server {
    let mut cmd = agora(dir);
    cmd.arg("serve").args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    loop {
        let line = rx.recv_timeout(Duration::from_secs(30)).expect("the server printed where it listens");
        let done = line.contains("is listening on");
        printed.push(line);
        if done {
            break;
        }
    }
    let last = printed.last().unwrap();
    let url = last.split("listening on ").nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    Server { child, printed, url }
}

impl Server {
    /// SIGTERM, then the exit status (it must exit by itself).
    fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.child.kill();
        panic!("the server did not stop within 5 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn first_start_prints_a_working_admin_credential_and_sigterm_stops_cleanly() {
    let dir = temp_dir("first");
    let port = free_port();
    let server = start(&dir, &["--listen", &format!("127.0.0.1:{port}")], &[]);
    assert_eq!(server.url, format!("http://127.0.0.1:{port}"));
    let field = |name: &str| {
        server
            .printed
            .iter()
            .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| panic!("no {name} in {:?}", server.printed))
    };
    let (email, password) = (field("email:"), field("password:"));
    assert!(dir.join("agora-data/agora.db").exists(), "SQLite lives in ./agora-data by default");

    let client = agora_client::Client::new(&server.url);
    let me = runtime().block_on(async {
        let tokens = client.token(&email, &password).await.unwrap();
        client.with_token(tokens.access_token).me().await.unwrap()
    });
    assert_eq!(me.role.as_deref(), Some("admin"));
    assert!(server.terminate().success(), "SIGTERM is a clean exit");

    // The credential is printed once: a second start on the same database has none.
    let again = start(&dir, &["--listen", &format!("127.0.0.1:{}", free_port())], &[]);
    assert!(!again.printed.iter().any(|l| l.contains("password:")), "{:?}", again.printed);
    assert!(again.terminate().success());

    // Admin commands work on the stopped server's database.
    let out = agora(&dir).args(["admin", "ban", &email]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("banned acct_"));
    let out = agora(&dir)
        .args(["admin", "create-admin", "--email", "second@example.com", "--password", "long enough"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = agora(&dir).args(["admin", "ban", "nobody@example.com"]).output().unwrap();
    assert!(!out.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flags_beat_environment_beats_the_config_file() {
    let dir = temp_dir("precedence");
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    std::fs::write(dir.join("agora.toml"), format!("listen = \"127.0.0.1:{file_port}\"\n")).unwrap();

    let from_file = start(&dir, &["--config", "agora.toml"], &[]);
    assert_eq!(from_file.url, format!("http://127.0.0.1:{file_port}"));
    from_file.terminate();

    let env = [("AGORA_LISTEN", format!("127.0.0.1:{env_port}"))];
    let from_env = start(&dir, &["--config", "agora.toml"], &env);
    assert_eq!(from_env.url, format!("http://127.0.0.1:{env_port}"));
    from_env.terminate();

    let from_flag =
        start(&dir, &["--config", "agora.toml", "--listen", &format!("127.0.0.1:{flag_port}")], &env);
    assert_eq!(from_flag.url, format!("http://127.0.0.1:{flag_port}"));
    from_flag.terminate();

    std::fs::write(dir.join("bad.toml"), "no_such_setting = 1\n").unwrap();
    let out = agora(&dir).args(["migrate", "--config", "bad.toml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_setting"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_example_is_printed_and_migrate_runs() {
    let dir = temp_dir("example");
    let out = agora(&dir).args(["config", "example"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("rate_limit_per_minute = 100") && text.contains("AGORA_LISTEN"));
    std::fs::write(dir.join("example.toml"), &text).unwrap();
    let out =
        agora(&dir).args(["migrate", "--config", "example.toml", "--data-dir", "data"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.join("data/agora.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_top_up_credits_in_major_units_and_bad_settings_are_refused() {
    let dir = temp_dir("top-up");
    let run = |args: &[&str]| agora(&dir).args(args).output().unwrap();
    let out = run(&["admin", "create-admin", "--email", "payer@example.com", "--password", "long enough"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&["admin", "top-up", "payer@example.com", "12.50", "USD", "--reason", "opening balance"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("(1250 minor units)"));
    for bad in [["1.234", "USD"], ["5", "XYZ"], ["-5", "USD"], ["ten", "PTS"]] {
        let out = run(&["admin", "top-up", "payer@example.com", bad[0], bad[1]]);
        assert!(!out.status.success(), "{bad:?} was accepted");
    }
    let out = agora(&dir).env("AGORA_PLATFORM_FEE_BPS", "20000").args(["migrate"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("platform_fee_bps"));

    // The credit is in the ledger the server reads.
    let server = start(&dir, &["--listen", &format!("127.0.0.1:{}", free_port())], &[]);
    let client = agora_client::Client::new(&server.url);
    let wallet = runtime().block_on(async {
        let tokens = client.token("payer@example.com", "long enough").await.unwrap();
        client.with_token(tokens.access_token).wallet().await.unwrap()
    });
    assert_eq!(wallet.balances.len(), 1);
    assert_eq!((wallet.balances[0].currency.as_str(), wallet.balances[0].available), ("USD", 1250));
    assert!(server.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The admin credential a first start printed.
/// A registration: a person when `email` is given (password "correct horse battery"), an
/// agent otherwise.
fn registration(account_type: AccountType, name: &str, email: Option<&str>) -> RegisterRequest {
    RegisterRequest {
        account_type,
        name: name.into(),
        email: email.map(str::to_owned),
        password: email.map(|_| "correct horse battery".to_owned()),
        description: None,
        skills: None,
        model_name: None,
    }
}

fn printed_credential(server: &Server) -> (String, String) {
    let field = |name: &str| {
        server.printed.iter().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned())).unwrap()
    };
    (field("email:"), field("password:"))
}

/// SIGKILL with tasks leased: after a restart, each leased chat turn fails when its lease
/// runs out and its requester is refunded; the queued one is still there to claim; the
/// ledger balances. On SQLite and (when configured) on PostgreSQL.
#[test]
fn kill_9_with_leased_tasks_recovers_after_restart() {
    let rt = runtime();
    kill_9_recovery(&rt, None);
    let schema = rt.block_on(agora_store_postgres::testing::TestSchema::create());
    match schema {
        Some(schema) => kill_9_recovery(&rt, Some(schema.url_with_search_path())),
        None => eprintln!("skipped the PostgreSQL half: no PostgreSQL"),
    }
}

fn kill_9_recovery(rt: &tokio::runtime::Runtime, database_url: Option<String>) {
    use agora_client::types::{DeliverRequest, PricingInput, ProfileFields, TopUpRequest};
    let dir = temp_dir(if database_url.is_some() { "kill9-pg" } else { "kill9-sqlite" });
    let mut env =
        vec![("AGORA_LEASE_SECONDS", "2".to_owned()), ("AGORA_WORKER_INTERVAL_MS", "100".to_owned())];
    if let Some(url) = &database_url {
        env.push(("AGORA_DATABASE_URL", url.clone()));
    }
    let server = start(&dir, &["--listen", &format!("127.0.0.1:{}", free_port())], &env);
    let (admin_email, admin_password) = printed_credential(&server);
    let anon = agora_client::Client::new(&server.url);
    let (ann, bot, turns) = rt.block_on(async {
        let admin = anon.with_token(anon.token(&admin_email, &admin_password).await.unwrap().access_token);
        use agora_client::types::AccountType::{Agent, Human};
        let ann_reg = anon.register(&registration(Human, "Ann", Some("ann@example.com"))).await.unwrap();
        let ann = anon
            .with_token(anon.token("ann@example.com", "correct horse battery").await.unwrap().access_token);
        admin
            .top_up(&ann_reg.account.id, &TopUpRequest { amount: 1000, currency: "PTS".into(), reason: None })
            .await
            .unwrap();
        let bot_reg = anon.register(&registration(Agent, "Scribe", None)).await.unwrap();
        let bot = anon.with_token(bot_reg.api_key.clone().unwrap());
        let pricing = PricingInput {
            currency: Some("PTS".into()),
            chat_first_message: Some(100),
            ..Default::default()
        };
        bot.update_me(&ProfileFields {
            pricing: Some(pricing),
            max_concurrent_tasks: Some(5),
            ..Default::default()
        })
        .await
        .unwrap();
        bot.heartbeat(false).await.unwrap();
        let mut turns = Vec::new();
        for i in 0..4 {
            turns.push(ann.start_chat(&bot_reg.account.id, &format!("question {i}")).await.unwrap().task_id);
        }
        for _ in 0..3 {
            bot.inbox(5).await.unwrap().expect("a queued turn");
        }
        (ann, bot, turns)
    });
    // Three turns leased, one queued, 400 held: now the process dies without a word.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = start(&dir, &["--listen", &format!("127.0.0.1:{}", free_port())], &env);
    let base = server.url.clone();
    let (ann, bot) = (ann.rebase(&base), bot.rebase(&base));
    rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let statuses: Vec<String> =
                futures_statuses(&ann, &turns).await.into_iter().map(|t| t.status).collect();
            if statuses[..3].iter().all(|s| s == "failed") {
                assert_eq!(statuses[3], "queued", "the unclaimed turn is untouched");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "leases did not expire after restart: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let w = ann.wallet().await.unwrap();
        assert_eq!((w.balances[0].available, w.balances[0].held), (900, 100), "three refunds, one hold left");
        let me = bot.me().await.unwrap();
        assert_eq!(me.counters.no_response, 3);
        // The queued turn is still deliverable after the restart.
        let task = bot.inbox(5).await.unwrap().expect("the queued turn survived");
        assert_eq!(task.id, turns[3]);
        let reply = DeliverRequest { text: Some("answer".into()), ..Default::default() };
        let done = bot.deliver(&task.id, &reply).await.unwrap();
        assert_eq!(done.settled_amount, 100);
    });
    let audit = rt.block_on(async {
        let anon = agora_client::Client::new(&base);
        let admin = anon.with_token(anon.token(&admin_email, &admin_password).await.unwrap().access_token);
        admin.ledger_audit().await.unwrap()
    });
    assert!(audit.healthy, "{audit:?}");
    assert!(server.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}

async fn futures_statuses(client: &agora_client::Client, ids: &[String]) -> Vec<agora_client::types::Task> {
    let mut out = Vec::new();
    for id in ids {
        out.push(client.task(id).await.unwrap());
    }
    out
}

/// `agora agent run` connects a local command as a worker: it goes online, takes a chat
/// turn, answers with the command's output, fails a task whose command fails, and stops
/// after `--max-tasks`.
#[test]
fn agent_run_answers_tasks_with_a_local_command() {
    let dir = temp_dir("agent-run");
    let server = start(&dir, &["--listen", &format!("127.0.0.1:{}", free_port())], &[]);
    let rt = runtime();
    let anon = agora_client::Client::new(&server.url);
    let (ann, bot) = rt.block_on(async {
        anon.register(&registration(AccountType::Human, "Ann", Some("ann@example.com"))).await.unwrap();
        let ann = anon
            .with_token(anon.token("ann@example.com", "correct horse battery").await.unwrap().access_token);
        (ann, anon.register(&registration(AccountType::Agent, "Shouter", None)).await.unwrap())
    });
    let script = "import json, sys\n\
                  task = json.load(sys.stdin)\n\
                  said = task['input']['messages'][-1]['content']\n\
                  sys.exit('boom: ' + said) if said == 'fail' else print(said.upper())";
    let mut runner = agora(&dir)
        .args([
            "agent",
            "run",
            "--url",
            &server.url,
            "--wait",
            "5",
            "--max-tasks",
            "2",
            "--",
            "python3",
            "-c",
            script,
        ])
        .env("AGORA_AGENT_KEY", bot.api_key.clone().unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !anon.agent(&bot.account.id).await.unwrap().online {
            assert!(std::time::Instant::now() < deadline, "the runner's heartbeat never arrived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let turn = ann.start_chat(&bot.account.id, "hello agora").await.unwrap();
        let done = settle(&ann, &turn.task_id).await;
        assert_eq!((done.status.as_str(), done.reply.as_deref()), ("completed", Some("HELLO AGORA")));
        let next = ann.chat_message(turn.chat_id.as_deref().unwrap(), "fail").await.unwrap();
        let failed = settle(&ann, &next.task_id).await;
        assert_eq!(failed.status, "failed");
        let log = failed.details["error"].as_str().unwrap();
        assert!(log.contains("boom: fail") && log.contains("exit"), "{log}");
    });
    let status = runner.wait().unwrap();
    assert!(status.success(), "it stops by itself after --max-tasks");
    assert!(server.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Polls a task until it has finished.
async fn settle(client: &agora_client::Client, id: &str) -> agora_client::types::Task {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let task = client.task(id).await.unwrap();
        if matches!(task.status.as_str(), "completed" | "failed") {
            return task;
        }
        assert!(std::time::Instant::now() < deadline, "task {id} stayed {}", task.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A minimal HTTP receiver on 127.0.0.1 (std only): records each request's `webhook-id`
/// and answers 200 — except, while `hang` is set, it reads the request and never answers.
struct HookReceiver {
    url: String,
    ids: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    hang: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HookReceiver {
    fn start() -> Self {
        use std::{
            io::{Read, Write},
            sync::{Arc, Mutex, atomic::AtomicBool},
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let ids = Arc::new(Mutex::new(Vec::new()));
        let hang = Arc::new(AtomicBool::new(true));
        let (ids2, hang2) = (ids.clone(), hang.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (ids, hang) = (ids2.clone(), hang2.clone());
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then the body by Content-Length.
                let (head_end, length) = loop {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break (0, 0);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                if head_end == 0 {
                    continue;
                }
                while buf.len() < head_end + length {
                    let n = stream.read(&mut chunk).unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
                if let Some(id) = head.lines().find_map(|l| l.strip_prefix("webhook-id:")) {
                    ids.lock().unwrap().push(id.trim().to_owned());
                }
                if hang.load(std::sync::atomic::Ordering::SeqCst) {
                    held.push(stream);
                } else {
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                }
            }
        });
        Self { url, ids, hang }
    }

    fn ids(&self) -> Vec<String> {
        self.ids.lock().unwrap().clone()
    }
}

/// SIGKILL while a delivery is in flight (sent, never answered, nothing recorded) and
/// right after another event committed: after a restart both are delivered — the first
/// again once its claim runs out, with the same `webhook-id`.
#[test]
fn kill_9_between_commit_and_delivery_delivers_after_restart_sqlite() {
    kill_9_webhooks(&runtime(), None);
}

#[test]
fn kill_9_between_commit_and_delivery_delivers_after_restart_postgres() {
    let rt = runtime();
    match rt.block_on(agora_store_postgres::testing::TestSchema::create()) {
        Some(schema) => kill_9_webhooks(&rt, Some(schema.url_with_search_path())),
        None => eprintln!("skipped: no PostgreSQL"),
    }
}

fn kill_9_webhooks(rt: &tokio::runtime::Runtime, database_url: Option<String>) {
    use agora_client::types::{TopUpRequest, WebhookRequest};
    let dir = temp_dir(if database_url.is_some() { "hook9-pg" } else { "hook9-sqlite" });
    let mut env = vec![
        ("AGORA_ALLOW_PRIVATE_WEBHOOKS", "true".to_owned()),
        ("AGORA_WORKER_INTERVAL_MS", "100".to_owned()),
    ];
    if let Some(url) = &database_url {
        env.push(("AGORA_DATABASE_URL", url.clone()));
    }
    let receiver = HookReceiver::start();
    let server = start(&dir, &["--listen", &format!("127.0.0.1:{}", free_port())], &env);
    let (admin_email, admin_password) = printed_credential(&server);
    let anon = agora_client::Client::new(&server.url);
    let (ann, ann_id, hook_id, admin) = rt.block_on(async {
        let admin = anon.with_token(anon.token(&admin_email, &admin_password).await.unwrap().access_token);
        let reg =
            anon.register(&registration(AccountType::Human, "Ann", Some("ann@example.com"))).await.unwrap();
        let ann = anon
            .with_token(anon.token("ann@example.com", "correct horse battery").await.unwrap().access_token);
        let hook = ann
            .create_webhook(&WebhookRequest {
                url: receiver.url.clone(),
                event_types: Some(vec!["payment.*".into()]),
                description: None,
                active: None,
            })
            .await
            .unwrap();
        (ann, reg.account.id, hook.webhook.id, admin)
    });
    let top_up = |admin: &agora_client::Client, amount: i64| {
        rt.block_on(admin.top_up(&ann_id, &TopUpRequest { amount, currency: "PTS".into(), reason: None }))
            .unwrap();
    };
    top_up(&admin, 11);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while receiver.ids().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the first delivery was never attempted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = receiver.ids()[0].clone();
    // Committed; then the process dies before it can deliver or record anything.
    top_up(&admin, 22);
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    receiver.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    let server = start(&dir, &["--listen", &format!("127.0.0.1:{}", free_port())], &env);
    let ann = ann.rebase(&server.url);
    let log = rt.block_on(async {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let log = ann.webhook_deliveries(&hook_id, "").await.unwrap();
            if log.len() == 2 && log.iter().all(|d| d.status == "delivered") {
                break log;
            }
            assert!(std::time::Instant::now() < deadline, "not delivered after restart: {log:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let ids = receiver.ids();
    assert!(
        ids.iter().filter(|id| **id == first).count() >= 2,
        "the in-flight delivery was sent again: {ids:?}"
    );
    for d in &log {
        assert!(ids.contains(&d.id), "{} reached the receiver: {ids:?}", d.id);
    }
    assert!(server.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGKILL before a reverse auction's deadline: the close is durable background work, so
/// after a restart it still happens, exactly once — the lowest bid is hired, its amount
/// held once — and a second restart changes nothing. (OIXA keeps such timers in memory
/// and leaves its auctions open forever after a restart.)
#[test]
fn kill_9_before_an_auction_closes_it_still_closes_once() {
    let rt = runtime();
    kill_9_auction(&rt, None);
    let schema = rt.block_on(agora_store_postgres::testing::TestSchema::create());
    match schema {
        Some(schema) => kill_9_auction(&rt, Some(schema.url_with_search_path())),
        None => eprintln!("skipped the PostgreSQL half: no PostgreSQL"),
    }
}

fn kill_9_auction(rt: &tokio::runtime::Runtime, database_url: Option<String>) {
    use agora_client::types::{BidRequest, Job, JobCreated, JobRequest, TopUpRequest};
    let dir = temp_dir(if database_url.is_some() { "auction9-pg" } else { "auction9-sqlite" });
    let mut env = vec![("AGORA_WORKER_INTERVAL_MS", "100".to_owned())];
    if let Some(url) = &database_url {
        env.push(("AGORA_DATABASE_URL", url.clone()));
    }
    let listen = || format!("127.0.0.1:{}", free_port());
    let server = start(&dir, &["--listen", &listen()], &env);
    let (admin_email, admin_password) = printed_credential(&server);
    let anon = agora_client::Client::new(&server.url);
    let closes_at = std::time::Instant::now() + Duration::from_secs(3);
    let (ann, job_id) = rt.block_on(async {
        let admin = anon.with_token(anon.token(&admin_email, &admin_password).await.unwrap().access_token);
        let ann_reg =
            anon.register(&registration(AccountType::Human, "Ann", Some("ann@example.com"))).await.unwrap();
        let ann = anon
            .with_token(anon.token("ann@example.com", "correct horse battery").await.unwrap().access_token);
        admin
            .top_up(&ann_reg.account.id, &TopUpRequest { amount: 1000, currency: "PTS".into(), reason: None })
            .await
            .unwrap();
        let deadline = agora_core::Timestamp::now().plus_seconds(3).to_rfc3339();
        let created: JobCreated = ann
            .post(
                "/api/v1/jobs",
                &JobRequest {
                    title: Some("Cheapest translation wins".into()),
                    budget_max: Some(500),
                    award: Some("reverse_auction".into()),
                    deadline: Some(deadline),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        for (name, amount) in [("Dear", 300), ("Cheap", 200)] {
            let bot = anon.with_token(
                anon.register(&registration(AccountType::Agent, name, None)).await.unwrap().api_key.unwrap(),
            );
            let _: agora_client::types::Bid = bot
                .post(
                    &format!("/api/v1/jobs/{}/bids", created.job.id),
                    &BidRequest { amount, ..Default::default() },
                )
                .await
                .unwrap();
        }
        (ann, created.job.id)
    });
    // Bids placed, the close scheduled: the process dies before the deadline.
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    std::thread::sleep(closes_at.saturating_duration_since(std::time::Instant::now()));

    let server = start(&dir, &["--listen", &listen()], &env);
    let ann = ann.rebase(&server.url);
    let check = |ann: &agora_client::Client| {
        rt.block_on(async {
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            let job = loop {
                let job: Job = ann.get(&format!("/api/v1/jobs/{job_id}")).await.unwrap();
                if job.status != "open" {
                    break job;
                }
                assert!(std::time::Instant::now() < deadline, "the auction did not close after restart");
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert_eq!((job.status.as_str(), job.hired_count), ("completed", 1));
            let bids: Vec<agora_client::types::Bid> =
                ann.get(&format!("/api/v1/jobs/{job_id}/bids")).await.unwrap();
            let outcome: Vec<(i64, &str)> = bids.iter().map(|b| (b.amount, b.status.as_str())).collect();
            assert_eq!(outcome, [(300, "rejected"), (200, "accepted")]);
            let w = ann.wallet().await.unwrap();
            assert_eq!((w.balances[0].available, w.balances[0].held), (800, 200), "held once");
        });
    };
    check(&ann);
    assert!(server.terminate().success());
    // Once more: nothing may happen now, so there is no condition to wait for; a second
    // close would run within the runner's first ticks (every 100 ms), so give it ten.
    let server = start(&dir, &["--listen", &listen()], &env);
    std::thread::sleep(Duration::from_secs(1));
    check(&ann.rebase(&server.url));
    assert!(server.terminate().success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `agora bench all` with tiny parameters, so the harness cannot rot: every scenario runs,
/// prints its JSON object, and reports no errors. No timing is asserted: the figures are
/// measurements, not checks.
fn bench_smoke(database_url: Option<String>) {
    let dir = temp_dir(if database_url.is_some() { "bench-pg" } else { "bench-sqlite" });
    let mut cmd = agora(&dir);
    cmd.args(["bench", "all", "--json", "--tasks", "20", "--agents", "3", "--concurrency", "2"]).args([
        "--seconds",
        "1",
        "--waiting",
        "30",
        "--events",
        "25",
        "--match-agents",
        "30",
        "--match-samples",
        "5",
    ]);
    if let Some(url) = &database_url {
        // Lifecycle on two replicas of one deployment, its pairs split across them.
        cmd.args(["--database-url", url, "--replicas", "2"]);
    }
    let out = cmd.stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "agora bench failed");
    let reports: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let names: Vec<&str> = reports.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["baseline", "dispatch", "lifecycle", "idle", "webhooks", "writers", "jobs"]);
    let backend = if database_url.is_some() { "postgres" } else { "sqlite" };
    for r in &reports {
        assert_eq!(r["backend"], backend, "{r}");
        assert!(r["cores"].as_u64().unwrap() >= 1, "{r}");
        let errors = &r["figures"]["errors"];
        assert!(errors.is_null() || errors == 0, "{r}");
    }
    let figure =
        |name: &str, key: &str| reports.iter().find(|r| r["name"] == name).unwrap()["figures"][key].clone();
    assert!(figure("baseline", "requests").as_u64().unwrap() > 0);
    assert!(figure("dispatch", "p99_ms").as_f64().is_some());
    assert!(figure("lifecycle", "lifecycles").as_u64().unwrap() > 0);
    let servers = reports.iter().find(|r| r["name"] == "lifecycle").unwrap()["parameters"]["servers"].clone();
    assert_eq!(servers, if database_url.is_some() { 2 } else { 1 });
    // A lifecycle is create, claim, deliver, read: at least four requests.
    assert!(figure("lifecycle", "requests_per_lifecycle").as_f64().unwrap() >= 4.0);
    // Each of those requests runs at least one statement.
    assert!(figure("lifecycle", "statements_per_lifecycle").as_f64().unwrap() >= 4.0);
    assert!(figure("idle", "ratio_to_baseline").as_f64().is_some());
    assert_eq!(figure("webhooks", "deliveries"), 25);
    assert_eq!(figure("webhooks", "duplicates"), 0);
    assert!(figure("writers", "commits_per_s_1").as_f64().unwrap() > 0.0);
    assert!(figure("writers", "commits_per_s_8").as_f64().unwrap() > 0.0);
    assert!(figure("jobs", "hirings").as_u64().unwrap() > 0);
    assert!(figure("jobs", "match_p50_ms_many_agents").as_f64().unwrap() > 0.0);
}

#[test]
fn bench_smoke_sqlite() {
    bench_smoke(None);
}

#[test]
fn bench_smoke_postgres() {
    // The bench makes (and drops) its own schema in the database it is given.
    match agora_store_postgres::testing::server_url() {
        Some(url) => bench_smoke(Some(url)),
        None => eprintln!("skipped bench_smoke_postgres: no PostgreSQL"),
    }
}

/// The processes whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(needle))
        })
        .collect()
}

/// The scratch schemas the bench process `pid` made (`agora_bench_<time>_<pid>_<n>`).
fn bench_schemas(rt: &tokio::runtime::Runtime, url: &str, pid: u32) -> Vec<String> {
    let all = rt.block_on(agora_store_postgres::scratch::schemas(url, "agora_bench")).unwrap();
    all.into_iter().filter(|s| s.rsplit('_').nth(1) == Some(pid.to_string().as_str())).collect()
}

/// SIGINT in the middle of a run: the bench stops its server child, drops its scratch
/// schema (PostgreSQL when there is one) and removes its files, then exits with an error.
#[test]
fn bench_interrupted_stops_its_server_and_removes_its_database() {
    let rt = runtime();
    let postgres = agora_store_postgres::testing::server_url();
    if postgres.is_none() {
        eprintln!("no PostgreSQL: checking the SQLite run only (the schema is not checked)");
    }
    let dir = temp_dir("bench-interrupted");
    let mut cmd = agora(&dir);
    cmd.args(["bench", "dispatch", "--tasks", "1000000", "--agents", "2"]);
    if let Some(url) = &postgres {
        cmd.args(["--database-url", url]);
    }
    let mut bench = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let pid = bench.id();
    // A server child runs on its fresh database (the run's directory names the bench's pid).
    let marker = format!("agora-bench-dispatch-{pid}-");
    let running = (0..1200).any(|_| {
        let up = !processes_with(&marker).is_empty()
            && postgres.as_deref().is_none_or(|url| !bench_schemas(&rt, url, pid).is_empty());
        if !up {
            std::thread::sleep(Duration::from_millis(50));
        }
        up
    });
    assert!(running, "the bench started no server within 60 s");

    assert!(Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap().success());
    let status = (0..1200)
        .find_map(|_| {
            let status = bench.try_wait().unwrap();
            if status.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
            status
        })
        .unwrap_or_else(|| {
            let _ = bench.kill();
            panic!("the bench did not exit within 60 s of SIGINT")
        });
    assert!(!status.success(), "an interrupted run is not a successful one");
    assert_eq!(processes_with(&marker), Vec::<u32>::new(), "its server is stopped");
    let files: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(&format!("-{pid}-")))
        .filter(|e| e.file_name().to_string_lossy().starts_with("agora-bench-"))
        .collect();
    assert!(files.is_empty(), "its files are removed: {files:?}");
    if let Some(url) = &postgres {
        assert_eq!(bench_schemas(&rt, url, pid), Vec::<String>::new(), "its schema is dropped");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
