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
