//! A fault-injecting HTTP proxy in front of moto's EC2 server (issue 10).
//!
//! Listens on 127.0.0.1 and forwards each request, except that with seeded
//! probabilities it answers 503 RequestLimitExceeded without forwarding
//! (throttle), 500 without forwarding (error), forwards and then answers 500
//! (lost: the request took effect, the client thinks it failed), forwards
//! and then closes the connection without an answer (reset), and delays.
//! RunInstances honours ClientToken as EC2 does when `client_token` is on: a
//! repeated token with the same parameters gets the first answer again
//! without launching; with other parameters, IdempotentParameterMismatch.
//! moto itself ignores tokens, which is the other mode.
//!
//! One decision per request from one seeded generator, so a seed names a
//! trial (up to the order in which concurrent requests arrive).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub throttle: f64,
    pub error: f64,
    pub lost: f64,
    pub reset: f64,
    /// Probability that a request is delayed by up to `max_delay`.
    pub delay: f64,
    pub max_delay: Duration,
    pub seed: u64,
    /// Emulate EC2's ClientToken idempotency for RunInstances.
    pub client_token: bool,
}

impl Faults {
    /// The issue's yardstick: 15 % throttled, 5 % failed, 10 % lost, 5 %
    /// reset, 30 % delayed by up to 0.5 s.
    pub fn issue_10(seed: u64, client_token: bool) -> Faults {
        Faults {
            throttle: 0.15,
            error: 0.05,
            lost: 0.10,
            reset: 0.05,
            delay: 0.3,
            max_delay: Duration::from_millis(500),
            seed,
            client_token,
        }
    }
}

/// Counts per EC2 action: `ok`, `throttle`, `error`, `lost`, `reset`,
/// `delayed`, `token-replayed`, `token-mismatch`.
pub type Stats = BTreeMap<String, BTreeMap<&'static str, u64>>;

/// A RunInstances token's first success: its parameters (without the
/// token) and the answer to replay.
type FirstUse = (Vec<(String, String)>, Vec<u8>);

struct Shared {
    faults: Faults,
    upstream: String,
    rng: Mutex<fastrand::Rng>,
    stats: Mutex<Stats>,
    /// ClientToken → its first successful request and answer.
    tokens: Mutex<BTreeMap<String, FirstUse>>,
}

pub struct FaultProxy {
    pub endpoint: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl FaultProxy {
    /// A proxy to `upstream` (`http://127.0.0.1:PORT`) on a thread of its own.
    pub fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// endpoint")
            .to_string();
        assert!(upstream.starts_with("127."), "only loopback upstreams");
        let shared = Arc::new(Shared {
            faults,
            upstream,
            rng: Mutex::new(fastrand::Rng::with_seed(faults.seed)),
            stats: Mutex::new(Stats::new()),
            tokens: Mutex::new(BTreeMap::new()),
        });
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let serving = Arc::clone(&shared);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let accept = async {
                    loop {
                        let Ok((stream, _)) = listener.accept().await else {
                            continue;
                        };
                        tokio::spawn(serve(Arc::clone(&serving), stream));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stop_rx => {}
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        FaultProxy {
            endpoint: format!("http://{addr}"),
            shared,
            stop: Some(stop_tx),
        }
    }

    pub fn stats(&self) -> Stats {
        self.shared.stats.lock().unwrap().clone()
    }
}

fn count(shared: &Shared, action: &str, what: &'static str) {
    *shared
        .stats
        .lock()
        .unwrap()
        .entry(action.to_string())
        .or_default()
        .entry(what)
        .or_default() += 1;
}

/// One HTTP/1.1 request: head lines and body.
struct Request {
    head: String,
    body: Vec<u8>,
}

/// Reads one request; `None` at a clean end of the connection.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Some(Request { head, body })
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn params(body: &[u8]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    v.sort();
    v
}

fn response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

fn ec2_error(status: &str, code: &str, message: &str) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
         <Message>{message}</Message></Error></Errors><RequestID>faultproxy</RequestID></Response>"
    );
    response(status, "text/xml", body.as_bytes())
}

/// Sends the request upstream on a fresh connection; the answer re-framed
/// with a Content-Length (moto's may be chunked or close-delimited).
async fn forward(shared: &Shared, request: &Request) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(&shared.upstream).await?;
    let mut head = String::new();
    for (i, line) in request.head.trim_end().lines().enumerate() {
        let name = line.split(':').next().unwrap_or("").trim();
        if i > 0 && (name.eq_ignore_ascii_case("connection") || name.eq_ignore_ascii_case("host")) {
            continue;
        }
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str(&format!(
        "Host: {}\r\nConnection: close\r\n\r\n",
        shared.upstream
    ));
    up.write_all(head.as_bytes()).await?;
    up.write_all(&request.body).await?;
    let mut raw = Vec::new();
    up.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no answer head"))?;
    let answer_head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    if header(&answer_head, "transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        body = dechunk(&body);
    }
    let status = answer_head
        .lines()
        .next()
        .and_then(|l| l.split_once(' '))
        .map(|(_, s)| s.to_string())
        .unwrap_or_else(|| "502 Bad Gateway".into());
    let content_type = header(&answer_head, "content-type").unwrap_or("text/xml");
    Ok(response(&status, content_type, &body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

async fn serve(shared: Arc<Shared>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    while let Some(request) = read_request(&mut stream, &mut buf).await {
        let p = params(&request.body);
        let action = p
            .iter()
            .find(|(k, _)| k == "Action")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "?".into());
        let f = shared.faults;
        let (roll, delay) = {
            let mut rng = shared.rng.lock().unwrap();
            let roll = rng.f64();
            let delay = (rng.f64() < f.delay).then(|| f.max_delay.mul_f64(rng.f64()));
            (roll, delay)
        };
        if let Some(d) = delay {
            count(&shared, &action, "delayed");
            tokio::time::sleep(d).await;
        }
        let kind = [
            ("throttle", f.throttle),
            ("error", f.error),
            ("lost", f.lost),
            ("reset", f.reset),
        ]
        .iter()
        .scan(0.0, |acc, (k, p)| {
            *acc += p;
            Some((*k, *acc))
        })
        .find(|(_, upto)| roll < *upto)
        .map_or("ok", |(k, _)| k);
        count(&shared, &action, kind);
        let answer = match kind {
            "throttle" => ec2_error(
                "503 Service Unavailable",
                "RequestLimitExceeded",
                "Request limit exceeded.",
            ),
            "error" => ec2_error(
                "500 Internal Server Error",
                "InternalError",
                "An internal error has occurred.",
            ),
            _ => {
                let token = (f.client_token && action == "RunInstances")
                    .then(|| {
                        p.iter()
                            .find(|(k, _)| k == "ClientToken")
                            .map(|t| t.1.clone())
                    })
                    .flatten();
                let rest: Vec<(String, String)> = p
                    .iter()
                    .filter(|(k, _)| k != "ClientToken")
                    .cloned()
                    .collect();
                let seen = token
                    .as_ref()
                    .and_then(|t| shared.tokens.lock().unwrap().get(t).cloned());
                let forwarded = match seen {
                    Some((params, _)) if params != rest => {
                        count(&shared, &action, "token-mismatch");
                        ec2_error(
                            "400 Bad Request",
                            "IdempotentParameterMismatch",
                            "The same client token was used with other parameters.",
                        )
                    }
                    Some((_, first)) => {
                        count(&shared, &action, "token-replayed");
                        first
                    }
                    None => match forward(&shared, &request).await {
                        Ok(a) => {
                            if let Some(t) = token
                                && a.starts_with(b"HTTP/1.1 200")
                            {
                                shared
                                    .tokens
                                    .lock()
                                    .unwrap()
                                    .entry(t)
                                    .or_insert((rest, a.clone()));
                            }
                            a
                        }
                        Err(e) => ec2_error("502 Bad Gateway", "ProxyError", &e.to_string()),
                    },
                };
                match kind {
                    "lost" => ec2_error(
                        "500 Internal Server Error",
                        "InternalError",
                        "An internal error has occurred.",
                    ),
                    "reset" => {
                        let _ = stream.shutdown().await;
                        return;
                    }
                    _ => forwarded,
                }
            }
        };
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}
