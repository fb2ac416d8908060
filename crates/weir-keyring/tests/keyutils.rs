//! The real Linux kernel keyring: a round trip in one process, across
//! threads, and across separate processes (what `weir login` followed by
//! `weir runs list` needs).
//!
//! Each test uses its own server origin under `.invalid`, so tests can run in
//! parallel and never touch a real login; each deletes its entry at the end.
//! The cross-process tests re-execute this test binary, running only
//! [`child_step`], with the step to run in the environment.
#![cfg(target_os = "linux")]

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use linux_keyutils::{KeyRing, KeyRingIdentifier};
use weir_keyring::{StoredToken, TokenStore, platform_store};

const STEP_ENV: &str = "WEIR_KEYRING_TEST_STEP";
const SERVER_ENV: &str = "WEIR_KEYRING_TEST_SERVER";
const TOKEN_ENV: &str = "WEIR_KEYRING_TEST_TOKEN";

fn unique_server(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "https://weir-test-{tag}-{}-{nanos}.invalid:8443/",
        std::process::id()
    )
}

fn token(text: &str) -> StoredToken {
    StoredToken::new(text.to_owned())
}

fn store() -> Box<dyn TokenStore> {
    platform_store().expect("the Linux keyutils store is available")
}

/// Deletes the test's entry even when an assertion fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = store().delete(&self.0);
    }
}

fn read(store: &dyn TokenStore, server: &str) -> Option<String> {
    store
        .get(server)
        .unwrap_or_else(|e| panic!("get failed: {e}"))
        .map(|t| t.expose().to_owned())
}

#[test]
fn keyring_round_trip() {
    let server = unique_server("round-trip");
    let _cleanup = Cleanup(server.clone());
    let store = store();

    assert_eq!(read(&*store, &server), None);
    store.put(&server, &token("aaa.bbb.ccc")).unwrap();
    assert_eq!(read(&*store, &server).as_deref(), Some("aaa.bbb.ccc"));

    // Another spelling of the same server reaches the same entry.
    let respelled = server
        .trim_end_matches('/')
        .to_uppercase()
        .replace("HTTPS", "https");
    assert_eq!(read(&*store, &respelled).as_deref(), Some("aaa.bbb.ccc"));

    store.put(&server, &token("ddd.eee.fff")).unwrap();
    assert_eq!(read(&*store, &server).as_deref(), Some("ddd.eee.fff"));

    assert!(store.delete(&server).unwrap(), "delete finds the entry");
    assert_eq!(read(&*store, &server), None, "read after delete");
    assert!(
        !store.delete(&server).unwrap(),
        "second delete finds nothing"
    );
}

#[test]
fn other_servers_do_not_see_the_token() {
    let server = unique_server("isolation");
    let _cleanup = Cleanup(server.clone());
    let store = store();
    store.put(&server, &token("aaa.bbb.ccc")).unwrap();
    let other_port = server.replace(":8443", ":8444");
    let other_scheme = server.replace("https:", "http:");
    assert_eq!(read(&*store, &other_port), None);
    assert_eq!(read(&*store, &other_scheme), None);
    assert!(store.delete(&server).unwrap());
}

#[test]
fn stored_tokens_and_bad_input_never_appear_in_errors() {
    let store = store();
    let err = store
        .put("https://alice:hunter2@weir.invalid", &token("aaa.bbb.ccc"))
        .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = store
        .put(&unique_server("bad-token"), &token("aaa.bbb\nccc"))
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("aaa.bbb"), "{err:?}");
}

#[test]
fn threads_that_never_touched_a_keyring_see_the_token() {
    let server = unique_server("threads");
    let _cleanup = Cleanup(server.clone());

    let s = server.clone();
    std::thread::spawn(move || store().put(&s, &token("aaa.bbb.ccc")).unwrap())
        .join()
        .unwrap();
    let s = server.clone();
    let seen = std::thread::spawn(move || read(&*store(), &s))
        .join()
        .unwrap();
    assert_eq!(seen.as_deref(), Some("aaa.bbb.ccc"));
    // One store value shared across threads, as a tokio runtime would.
    let shared: std::sync::Arc<dyn TokenStore> = std::sync::Arc::from(store());
    let (a, s) = (shared.clone(), server.clone());
    std::thread::spawn(move || a.put(&s, &token("ddd.eee.fff")).unwrap())
        .join()
        .unwrap();
    assert_eq!(read(&*shared, &server).as_deref(), Some("ddd.eee.fff"));
    assert!(shared.delete(&server).unwrap());
}

/// Runs one step in a new process (this binary, running [`child_step`])
/// and returns what it printed.
fn step_in_new_process(step: &str, server: &str, token: Option<&str>) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["child_step", "--exact", "--nocapture", "--test-threads=1"])
        .env(STEP_ENV, step)
        .env(SERVER_ENV, server)
        .env_remove(TOKEN_ENV);
    if let Some(token) = token {
        command.env(TOKEN_ENV, token);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child {step} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The harness prints "test child_step ... " on the same line.
    stdout
        .split_once("STEP-RESULT ")
        .and_then(|(_, rest)| rest.lines().next())
        .unwrap_or_else(|| panic!("child {step} printed no result: {stdout}"))
        .to_owned()
}

/// `weir login`, then later commands, each a separate process.
fn login_then_later_commands(server: &str) {
    assert_eq!(step_in_new_process("get", server, None), "none");
    assert_eq!(
        step_in_new_process("put", server, Some("aaa.bbb.ccc")),
        "ok"
    );
    assert_eq!(step_in_new_process("get", server, None), "some aaa.bbb.ccc");
    assert_eq!(
        step_in_new_process("put", server, Some("ddd.eee.fff")),
        "ok"
    );
    assert_eq!(step_in_new_process("get", server, None), "some ddd.eee.fff");
    assert_eq!(step_in_new_process("delete", server, None), "true");
    assert_eq!(step_in_new_process("get", server, None), "none");
    assert_eq!(step_in_new_process("delete", server, None), "false");
}

/// The plain-shell case: the children inherit this test thread's keyrings,
/// and the thread has never touched one (so, run from a shell without a
/// session keyring, neither have they).
#[test]
fn separate_processes_from_a_plain_shell_share_one_entry() {
    let server = unique_server("processes");
    let _cleanup = Cleanup(server.clone());
    // Says which case ran: `_uid_ses.<uid>` means the children started
    // without a session keyring (a plain shell, as on the CI machine).
    let session = step_in_new_process("session", &server, None);
    eprintln!("children started with session keyring {session}");
    login_then_later_commands(&server);
}

/// The login-session case (`keyctl session`, or `pam_keyinit` on ssh and
/// desktop logins): the children share a session keyring.
#[test]
fn separate_processes_in_one_session_keyring_share_one_entry() {
    let server = unique_server("session");
    let _cleanup = Cleanup(server.clone());
    let s = server.clone();
    std::thread::spawn(move || {
        KeyRing::from_special_id(KeyRingIdentifier::Session, true).unwrap();
        assert_eq!(step_in_new_process("session", &s, None), "_ses");
        login_then_later_commands(&s);
    })
    .join()
    .unwrap();
}

/// Two login sessions of one user (two ssh logins): the token stored in one
/// is found in the other, through the user's persistent keyring.
#[test]
fn separate_sessions_of_one_user_share_one_entry() {
    let server = unique_server("sessions");
    let _cleanup = Cleanup(server.clone());
    let in_new_session = |step: &'static str, token: Option<&'static str>| {
        let s = server.clone();
        std::thread::spawn(move || {
            KeyRing::from_special_id(KeyRingIdentifier::Session, true).unwrap();
            step_in_new_process(step, &s, token)
        })
        .join()
        .unwrap()
    };
    assert_eq!(in_new_session("put", Some("aaa.bbb.ccc")), "ok");
    assert_eq!(in_new_session("get", None), "some aaa.bbb.ccc");
    assert_eq!(in_new_session("delete", None), "true");
    assert_eq!(in_new_session("get", None), "none");
}

/// Not a test on its own: the body of the child processes above. Without
/// the step variable it does nothing.
#[test]
fn child_step() {
    let Ok(step) = std::env::var(STEP_ENV) else {
        return;
    };
    let server = std::env::var(SERVER_ENV).unwrap();
    let store = store();
    let result = match step.as_str() {
        "put" => {
            let text = std::env::var(TOKEN_ENV).unwrap();
            store.put(&server, &token(&text)).map(|()| "ok".to_owned())
        }
        "get" => store.get(&server).map(|t| match t {
            Some(t) => format!("some {}", t.expose()),
            None => "none".to_owned(),
        }),
        "delete" => store.delete(&server).map(|found| found.to_string()),
        // Which session keyring the process started with (asking without
        // "create" installs `_uid_ses.<uid>` when there was none).
        "session" => Ok(KeyRing::from_special_id(KeyRingIdentifier::Session, false)
            .and_then(|k| k.metadata())
            .map_or_else(|e| format!("{e:?}"), |m| m.get_description().to_owned())),
        other => panic!("unknown step {other}"),
    };
    match result {
        Ok(r) => println!("STEP-RESULT {r}"),
        Err(e) => println!("STEP-RESULT error: {e}"),
    }
}
