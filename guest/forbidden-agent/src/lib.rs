//! A test agent that reaches past `mandate:guard/tools` on its own: it reads
//! a file, an environment variable, opens a TCP connection, binds a UDP
//! socket and looks up a host name. Building it for `wasm32-wasip2` makes its
//! component import `wasi:filesystem` and `wasi:sockets`, which Mandate links
//! granting nothing: it loads and runs, and every one of those attempts
//! fails (`tests/tests/lockdown.rs`).
//!
//! The task is `<file> <address>`: the file to read and the `ip:port` to
//! connect to (the test listens there and checks nothing arrives). The
//! report has one line per attempt: `<what>: <error>` or `<what>: reached`.

wit_bindgen::generate!({
    path: "../../wit",
    world: "agent",
});

use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};

struct ForbiddenAgent;

impl Guest for ForbiddenAgent {
    fn run(task: String) -> Result<String, String> {
        let mut words = task.split_whitespace();
        let file = words.next().unwrap_or("/etc/passwd");
        let address = words.next().unwrap_or("203.0.113.7:443");
        let mut report = Vec::new();
        let mut line = |what: &str, outcome: Result<String, String>| {
            report.push(match outcome {
                Ok(got) => format!("{what}: reached ({got})"),
                Err(error) => format!("{what}: {error}"),
            });
        };
        line(
            "read file",
            std::fs::read_to_string(file)
                .map(|text| format!("{} bytes", text.len()))
                .map_err(|e| e.to_string()),
        );
        line(
            "list directory",
            std::fs::read_dir("/")
                .map(|entries| format!("{} entries", entries.count()))
                .map_err(|e| e.to_string()),
        );
        line(
            "environment",
            std::env::var("API_TOKEN").map_err(|e| e.to_string()),
        );
        line(
            "tcp connect",
            TcpStream::connect(address)
                .and_then(|mut stream| stream.write_all(b"token"))
                .map(|()| "sent".to_string())
                .map_err(|e| e.to_string()),
        );
        line(
            "udp bind",
            UdpSocket::bind("0.0.0.0:0")
                .and_then(|socket| socket.send_to(b"token", address))
                .map(|n| format!("{n} bytes sent"))
                .map_err(|e| e.to_string()),
        );
        line(
            "name lookup",
            ("example.com", 443)
                .to_socket_addrs()
                .map(|addrs| format!("{} addresses", addrs.count()))
                .map_err(|e| e.to_string()),
        );
        Ok(report.join("\n"))
    }
}

export!(ForbiddenAgent);
