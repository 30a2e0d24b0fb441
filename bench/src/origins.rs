//! The two origin processes, started on the load core and killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::pin::Pinning;

pub struct Origins {
    children: Vec<Child>,
    pub addrs: [SocketAddr; 2],
    pub pids: [u32; 2],
}

impl Origins {
    /// Starts two `bench-origin` processes on free loopback ports and waits
    /// for each to print its bound address.
    pub fn start(bin: &Path, pin: &Pinning) -> Result<Self> {
        if !bin.is_file() {
            return Err(Error::MissingBinary(bin.to_path_buf()));
        }
        let mut children = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..2 {
            let mut child = pin
                .load_command(&bin.display().to_string())
                .args(["--listen", "127.0.0.1:0"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .ctx(|| format!("starting {}", bin.display()))?;
            let mut line = String::new();
            if let Some(out) = child.stdout.take() {
                let _ = BufReader::new(out).read_line(&mut line);
            }
            let addr = line
                .trim()
                .strip_prefix("listening on ")
                .and_then(|a| a.parse::<SocketAddr>().ok());
            children.push(child);
            match addr {
                Some(a) => addrs.push(a),
                None => {
                    let mut o = Self {
                        children,
                        addrs: [SocketAddr::from(([127, 0, 0, 1], 0)); 2],
                        pids: [0; 2],
                    };
                    o.stop();
                    return Err(Error::Tool {
                        tool: "bench-origin".into(),
                        detail: format!("unexpected first line {line:?}"),
                    });
                }
            }
        }
        let pids = [children[0].id(), children[1].id()];
        Ok(Self {
            children,
            addrs: [addrs[0], addrs[1]],
            pids,
        })
    }

    pub fn stop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.children.clear();
    }
}

impl Drop for Origins {
    fn drop(&mut self) {
        self.stop();
    }
}
