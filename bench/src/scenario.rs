//! The scenarios: what load, on which path, with which proxy features. The
//! same list drives every peer, so a row of the report is one workload.

use std::time::Duration;

use crate::load::Generator;

/// The content coding of a compression scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Br,
    Zstd,
}

impl Coding {
    /// Its `Accept-Encoding` / `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Br => "br",
            Coding::Zstd => "zstd",
        }
    }
}

/// How a scenario loads the proxy.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A timed load run from a generator.
    Load {
        generator: Generator,
        path: &'static str,
        connections: usize,
        /// New connection per request.
        close: bool,
        /// HTTP/2 over TLS with this many streams per connection.
        h2_streams: Option<usize>,
        /// Compression level asked of the proxy, for `coding` (and
        /// `Accept-Encoding: <coding>` sent). The name is from when gzip was
        /// the only coding.
        gzip_level: Option<u32>,
        /// Which coding `gzip_level` is for (gzip unless a br or zstd row).
        coding: Coding,
    },
    /// Open `connections` idle keep-alive connections (one request each)
    /// and measure the proxy's RSS growth per connection.
    Idle { connections: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Short stable id, used by `--scenarios` and in file names.
    pub id: &'static str,
    pub title: &'static str,
    pub kind: Kind,
}

impl Scenario {
    /// Whether the origin alone (the ceiling) can serve this scenario.
    pub fn direct_applies(&self) -> bool {
        matches!(
            self.kind,
            Kind::Load {
                h2_streams: None,
                gzip_level: None,
                ..
            }
        )
    }

    pub fn needs_tls(&self) -> bool {
        matches!(
            self.kind,
            Kind::Load {
                h2_streams: Some(_),
                ..
            }
        )
    }

    /// The coding of a compression scenario (gzip for the others).
    pub fn coding(&self) -> Coding {
        match self.kind {
            Kind::Load { coding, .. } => coding,
            Kind::Idle { .. } => Coding::Gzip,
        }
    }

    pub fn gzip_level(&self) -> Option<u32> {
        match self.kind {
            Kind::Load { gzip_level, .. } => gzip_level,
            Kind::Idle { .. } => None,
        }
    }

    pub fn generator(&self) -> Option<Generator> {
        match self.kind {
            Kind::Load { generator, .. } => Some(generator),
            Kind::Idle { .. } => None,
        }
    }
}

/// Timings of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub rounds: usize,
    pub duration: Duration,
    pub warmup: Duration,
}

fn load(
    id: &'static str,
    title: &'static str,
    generator: Generator,
    path: &'static str,
    connections: usize,
) -> Scenario {
    Scenario {
        id,
        title,
        kind: Kind::Load {
            generator,
            path,
            connections,
            close: false,
            h2_streams: None,
            gzip_level: None,
            coding: Coding::Gzip,
        },
    }
}

/// Every scenario of a full run. `h1` is the HTTP/1.1 generator (wrk, or
/// the built-in one when wrk is unavailable), `close` the one used for a
/// new connection per request.
pub fn all(h1: Generator, close: Generator, idle_connections: usize) -> Vec<Scenario> {
    let mut v = vec![
        load("h1-tiny", "HTTP/1.1 keep-alive, 13 B body", h1, "/tiny", 64),
        load("h1-1k", "HTTP/1.1 keep-alive, 1 KiB body", h1, "/1k", 64),
        load("h1-64k", "HTTP/1.1 keep-alive, 64 KiB body", h1, "/64k", 32),
    ];
    let mut c = load(
        "h1-close",
        "HTTP/1.1, new connection per request, 1 KiB",
        close,
        "/1k",
        32,
    );
    if let Kind::Load { close, .. } = &mut c.kind {
        *close = true;
    }
    v.push(c);
    let mut h2 = load(
        "h2-tls",
        "HTTP/2 over TLS, 16 streams/conn, 1 KiB",
        Generator::H2load,
        "/1k",
        8,
    );
    if let Kind::Load { h2_streams, .. } = &mut h2.kind {
        *h2_streams = Some(16);
    }
    v.push(h2);
    // Brotli and zstd at Sluice's default levels beside gzip's two
    // (perf/findings/2026-12-02-brotli-zstd.md); a peer that cannot send
    // the coding shows as unsupported (the probe finds no Content-Encoding).
    for (id, title, coding, level) in [
        ("gzip-1", "gzip level 1, 64 KiB JSON", Coding::Gzip, 1),
        (
            "gzip-6",
            "gzip level 6 (default), 64 KiB JSON",
            Coding::Gzip,
            6,
        ),
        ("br-3", "brotli quality 3, 64 KiB JSON", Coding::Br, 3),
        ("zstd-3", "zstd level 3, 64 KiB JSON", Coding::Zstd, 3),
    ] {
        let mut g = load(id, title, h1, "/json64k", 32);
        if let Kind::Load {
            gzip_level,
            coding: c,
            ..
        } = &mut g.kind
        {
            *gzip_level = Some(level);
            *c = coding;
        }
        v.push(g);
    }
    v.push(Scenario {
        id: "idle",
        title: "idle keep-alive connections: RSS growth per connection",
        kind: Kind::Idle {
            connections: idle_connections,
        },
    });
    v
}

/// The `--quick` subset: one scenario per feature.
pub fn quick(h1: Generator, close: Generator) -> Vec<Scenario> {
    all(h1, close, 1000)
        .into_iter()
        .filter(|s| matches!(s.id, "h1-1k" | "h1-close" | "h2-tls" | "gzip-1" | "idle"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_quick_is_a_subset() {
        let all = all(Generator::Wrk, Generator::Wrk, 5000);
        let mut ids: Vec<_> = all.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
        for q in quick(Generator::Wrk, Generator::Wrk) {
            assert!(all.iter().any(|s| s.id == q.id));
        }
        let h2 = all.iter().find(|s| s.id == "h2-tls").unwrap();
        assert!(h2.needs_tls() && !h2.direct_applies());
        assert_eq!(
            all.iter().find(|s| s.id == "gzip-6").unwrap().gzip_level(),
            Some(6)
        );
        let br = all.iter().find(|s| s.id == "br-3").unwrap();
        assert_eq!((br.coding(), br.gzip_level()), (Coding::Br, Some(3)));
        let zstd = all.iter().find(|s| s.id == "zstd-3").unwrap();
        assert_eq!((zstd.coding(), zstd.gzip_level()), (Coding::Zstd, Some(3)));
        assert!(!zstd.direct_applies());
    }
}
