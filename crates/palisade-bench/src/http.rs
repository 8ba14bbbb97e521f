//! A minimal HTTP/1.1 client for loopback benchmarking: one persistent connection, requests
//! written in one syscall, replies framed by `Content-Length` or chunked encoding. A general
//! client spends more CPU per call than the server under test does on some actions, and on
//! two cores that CPU is taken from the server.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Reply {
    pub status: u16,
    pub body: String,
}

pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` already consumed by earlier replies.
    start: usize,
    scratch: Box<[u8]>,
}

impl Connection {
    pub fn connect(addr: &str, timeout: Duration) -> io::Result<Connection> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            scratch: vec![0; 64 * 1024].into_boxed_slice(),
        })
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads one reply. Returns the reply
    /// and whether the server keeps the connection open.
    pub fn round_trip(&mut self, request: &[u8]) -> io::Result<(Reply, bool)> {
        self.stream.write_all(request)?;
        let head_end = loop {
            if let Some(i) = find(&self.buf[self.start..], b"\r\n\r\n") {
                break self.start + i + 4;
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(&self.buf[self.start..head_end])
            .map_err(|_| bad("reply head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let (mut length, mut chunked, mut keep_alive) = (None, false, true);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad("bad content-length"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                keep_alive = !value.eq_ignore_ascii_case("close");
            }
        }
        self.start = head_end;
        let body = if chunked {
            self.read_chunked()?
        } else {
            let n = length.ok_or_else(|| bad("reply without a length"))?;
            self.take(n)?
        };
        // Keep the buffer small: drop what has been consumed.
        self.buf.drain(..self.start);
        self.start = 0;
        let body = String::from_utf8(body).map_err(|_| bad("reply body is not UTF-8"))?;
        Ok((Reply { status, body }, keep_alive))
    }

    fn fill(&mut self) -> io::Result<()> {
        match self.stream.read(&mut self.scratch)? {
            0 => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed",
            )),
            n => {
                self.buf.extend_from_slice(&self.scratch[..n]);
                Ok(())
            }
        }
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() - self.start < n {
            self.fill()?;
        }
        let out = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        Ok(out)
    }

    fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf[self.start..], b"\r\n") {
                let s = String::from_utf8_lossy(&self.buf[self.start..self.start + i]).into_owned();
                self.start += i + 2;
                return Ok(s);
            }
            self.fill()?;
        }
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let size_line = self.line()?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the blank line.
                while !self.line()?.is_empty() {}
                return Ok(body);
            }
            body.extend_from_slice(&self.take(size)?);
            self.line()?;
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves canned replies (one per request) on a loopback port.
    fn serve(replies: Vec<&'static [u8]>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            for r in replies {
                let mut got = Vec::new();
                while find(&got, b"\r\n\r\n").is_none() {
                    let n = s.read(&mut buf).unwrap();
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(r).unwrap();
            }
        });
        addr
    }

    #[test]
    fn length_and_chunked_replies_on_one_connection() {
        let addr = serve(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nConnection: close\r\n\r\n",
        ]);
        let mut c = Connection::connect(&addr, Duration::from_secs(5)).unwrap();
        let req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
        let (r, keep) = c.round_trip(req).unwrap();
        assert_eq!((r.status, r.body.as_str(), keep), (200, "hello", true));
        let (r, keep) = c.round_trip(req).unwrap();
        assert_eq!((r.status, r.body.as_str(), keep), (404, "abcde", true));
        let (r, keep) = c.round_trip(req).unwrap();
        assert_eq!((r.status, r.body.as_str(), keep), (200, "", false));
        assert!(c.round_trip(req).is_err());
    }
}
