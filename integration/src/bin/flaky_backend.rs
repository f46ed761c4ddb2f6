//! A backend process for end-to-end tests of how the router copes with
//! backends that fail: it answers every request with a set status after a
//! set delay, on keep-alive HTTP/1.1 connections, and tells how many
//! requests it has had on `GET /__count`.
//!
//!     flaky_backend PORT STATUS DELAY_MS NAME

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [port, status, delay_ms, name] = args.as_slice() else {
        eprintln!("usage: flaky_backend PORT STATUS DELAY_MS NAME");
        std::process::exit(2);
    };
    let parse = |what: &str, text: &str| -> u64 {
        text.parse().unwrap_or_else(|_| {
            eprintln!("flaky_backend: {what} {text:?} is not a number");
            std::process::exit(2)
        })
    };
    let status = parse("STATUS", status);
    let delay = Duration::from_millis(parse("DELAY_MS", delay_ms));
    let listener =
        TcpListener::bind(("127.0.0.1", parse("PORT", port) as u16)).unwrap_or_else(|e| {
            eprintln!("flaky_backend: cannot listen on {port}: {e}");
            std::process::exit(1)
        });
    let name: &'static str = Box::leak(name.clone().into_boxed_str());
    let served = Arc::new(AtomicU64::new(0));
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let served = served.clone();
        std::thread::spawn(move || {
            let Ok(read_half) = stream.try_clone() else {
                return;
            };
            let mut reader = BufReader::new(read_half);
            let mut writer = stream;
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    return;
                }
                let mut length = 0usize;
                let mut close = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if let Some(v) = lower.strip_prefix("connection:") {
                        close = v.trim() == "close";
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                let (code, text) = if request_line.starts_with("GET /__count ") {
                    (200, format!("{}\n", served.load(Ordering::SeqCst)))
                } else {
                    served.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(delay);
                    (status, format!("{name}\n"))
                };
                let reply = format!(
                    "HTTP/1.1 {code} X\r\nContent-Length: {}\r\n\r\n{text}",
                    text.len()
                );
                if writer.write_all(reply.as_bytes()).is_err() || close {
                    return;
                }
            }
        });
    }
}
