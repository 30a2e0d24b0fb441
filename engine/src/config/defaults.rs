//! Defaults for every setting, each with the reason for its value.

use std::time::Duration;

/// Access log lines (and shipped entries) waiting for their writer: at a
/// few hundred bytes a line, 8192 is a few MiB at most, and more than a
/// second of lines at 5k requests/s while a disk or the log service stalls.
pub const ACCESS_LOG_QUEUE: usize = 8192;
/// Entries per POST to the log service: well under its body limit.
pub const SHIP_BATCH: usize = 500;
/// Longest an entry waits for its batch to fill before it is sent.
pub const SHIP_INTERVAL: Duration = Duration::from_secs(1);
/// Batches kept for retry while the log service fails (with `SHIP_BATCH`,
/// 8000 entries); past that the oldest is dropped and counted.
pub const SHIP_PENDING: usize = 16;
/// The response header naming the instance that answered.
pub const INSTANCE_HEADER: &str = "x-sluice-instance";

/// Largest request header block (request line + fields). Like nginx's
/// `large_client_header_buffers 4 8k` budget, with room for big cookies.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields in one request; more is almost always an attack.
pub const MAX_HEADERS: usize = 100;
/// Longest request target; 8 KiB is what most servers and CDNs accept.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Concurrent streams per HTTP/2 connection (RFC 9113 recommends at least 100).
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 256;
/// Accept queue length; the kernel caps it at `net.core.somaxconn`.
pub const BACKLOG: i32 = 4096;

/// How long a client may take to send a complete request head, and how long
/// a keep-alive connection may sit idle between requests.
pub const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the next bytes of a request body while the proxy wants
/// them (between two reads, not for the whole body: nginx's
/// `client_body_timeout`, same default). A client slower than this gets a
/// 408 and its backend is not blamed.
pub const CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// The slowest average upload accepted, in bytes per second of the time
/// the proxy waits on the client for its body, once [`MIN_BODY_RATE_GRACE`]
/// of such time has passed: Kestrel's `MinRequestBodyDataRate` (240 B/s
/// after 5 s). `CLIENT_BODY_TIMEOUT` bounds each silence, this bounds the
/// whole upload: a client sending a byte every 59 s would otherwise hold a
/// backend connection forever. Time the backend is slow to take the bytes
/// is never counted.
pub const MIN_BODY_RATE: u32 = 240;
pub const MIN_BODY_RATE_GRACE: Duration = Duration::from_secs(5);
/// No request body size limit by default (0), like HAProxy and Envoy:
/// bodies stream through and are never buffered, so their size costs the
/// proxy no memory, and the backend knows what it accepts (nginx's 1 MiB
/// `client_max_body_size` is a classic cause of broken uploads).
pub const MAX_REQUEST_BODY: u64 = 0;
/// A backend that sends nothing of a response body it started for this
/// long (between two reads, like nginx's `proxy_read_timeout`, same
/// default) has its response cut: the client sees a truncated body.
pub const UPSTREAM_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// A downstream HTTP/2 connection with no open stream this long gets GOAWAY
/// and is closed: its PINGs prove the client alive, not that it needs the
/// connection (nginx's `keepalive_timeout` is 75 s). Longer than HTTP/1.1's
/// keep-alive (`CLIENT_HEADER_TIMEOUT`): an h2 connection carries many
/// requests and its TLS handshake is worth keeping. Also the interval of
/// keep-alive PINGs that find dead peers during long streams, and how long
/// an upgraded tunnel (WebSocket) may carry no byte either way.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// A backend that cannot accept a TCP connection this fast is treated as down.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time the backend gets to answer once the request is all sent (to the
/// response head, not to the end of its body), and to take each part of the
/// request meanwhile; time spent waiting on the client's body is not counted.
pub const UPSTREAM_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Upstream keep-alive connections idle longer than this are closed; below the
/// 75 s default of nginx/Apache backends so that we, not they, close first.
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(50);
/// Idle keep-alive connections kept per backend and per worker.
pub const MAX_IDLE_PER_BACKEND: usize = 128;
/// Grace period for in-flight requests on shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// The name this proxy uses in `Via`.
pub const VIA_NAME: &str = "sluice";
/// The field naming a client's verified certificate to backends: Envoy's
/// (`Hash=…;Subject="…"`), which backends behind Envoy already read.
pub const CLIENT_CERT_HEADER: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-client-cert");
/// The upstream group used by quick flags and by `/register`.
pub const DEFAULT_GROUP: &str = "default";

/// Active checks: probe every 2 s, 1 s to answer, `/ping` (the classic heartbeat).
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(2);
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
pub const HEALTH_PATH: &str = "/ping";
/// Two good checks to return, three bad to leave (HAProxy's rise 2 / fall 3).
pub const HEALTH_RISE: u32 = 2;
pub const HEALTH_FALL: u32 = 3;
/// A check with `expect_body` reads at most this much of the body: a status
/// page fits, and a backend answering with an endless body cannot make a
/// check hold memory or time beyond it.
pub const HEALTH_MAX_BODY: usize = 64 * 1024;
/// Ejection after 5 consecutive 5xx or backend-side errors (Envoy's
/// `consecutive_5xx` default): few enough to stop feeding a dead backend
/// within a handful of requests, more than the odd error a healthy one gives.
pub const PASSIVE_CONSECUTIVE_5XX: u32 = 5;
/// Off: gateway errors (502/503/504) already count toward the 5xx streak,
/// and Envoy ships this detector unenforced too. Set it below
/// `consecutive_5xx` to eject sooner on gateway errors than on other 5xx.
pub const PASSIVE_CONSECUTIVE_GATEWAY_ERRORS: u32 = 0;
/// Off: connect failures already count toward the 5xx streak. Set it low
/// (2 or 3) to eject a backend that stopped listening faster.
pub const PASSIVE_CONSECUTIVE_CONNECT_FAILURES: u32 = 0;
/// Off (0), like Envoy's `enforcing_failure_percentage`: a rate threshold
/// needs knowing the backend's normal error rate. When set, Envoy's
/// failure-percentage threshold is 85.
pub const PASSIVE_ERROR_RATE_PERCENT: u8 = 0;
/// The error rate is over the last 10 s (Envoy's detection `interval`),
/// sampled every tenth of it; also what `GET /backends` shows.
pub const PASSIVE_ERROR_RATE_WINDOW: Duration = Duration::from_secs(10);
/// At least 50 requests in the window before its rate counts (Envoy's
/// `failure_percentage_request_volume`): 2 failures in 3 requests is noise.
pub const PASSIVE_ERROR_RATE_MIN_REQUESTS: u32 = 50;
/// One trial request at a time while half-open (Hystrix's single probe): a
/// backend that just failed should not take a burst.
pub const HALF_OPEN_TRIALS: u32 = 1;
/// Three successful trials close the breaker: one could be luck, and a
/// recovered backend is not held out long (trials follow each other).
pub const HALF_OPEN_SUCCESSES: u32 = 3;
/// A trial still unfinished after 60 s counts as failed and re-opens the
/// breaker: the default `upstream_response` (a backend that has not even
/// answered by then gets a 504 anyway), and long enough for an ordinary
/// response body. A trial that is a long stream (SSE) re-opens a backend
/// rather than keep it half-open, taking nothing else, forever.
pub const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(60);
/// Off, HAProxy's default: a ramp delays the use of a new backend, worth it
/// only where backends start cold (caches, JIT). Never applied at startup.
pub const SLOW_START: Duration = Duration::ZERO;
/// No limit of requests in flight per backend (`max_requests_per_backend`
/// 0), as HAProxy's `maxconn` unset: without a limit there is no queue.
pub const MAX_REQUESTS_PER_BACKEND: u32 = 0;
/// The most a backend's limit may be set to: past it the limit means nothing.
pub const MAX_MAX_REQUESTS_PER_BACKEND: u32 = 1_000_000;
/// Requests a limited group's queue holds at most: enough to absorb a burst,
/// bounded so a flood gets 503s instead of piling up requests (and their
/// connections) behind a saturated group. Each waiter costs about 100
/// bytes beside the request it holds.
pub const MAX_QUEUE: usize = 1024;
/// The most `max_queue` may be (memory bound: see [`MAX_QUEUE`]).
pub const MAX_MAX_QUEUE: usize = 100_000;
/// How long a request waits for a backend slot before a 503, HAProxy's
/// `timeout queue` (its default is `timeout connect`, often 5 s).
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// `X-Sluice-Backend` is off: it tells clients the inside of the network.
pub const BACKEND_HEADER: bool = false;
/// The breaker's first cool-down lasts 10 s and doubles on each opening, up to 5 min.
pub const PASSIVE_EJECTION: Duration = Duration::from_secs(10);
pub const PASSIVE_MAX_EJECTION: Duration = Duration::from_secs(300);
/// At most half a group is ever ejected, so a shared fault cannot empty it.
pub const PASSIVE_MAX_EJECTED_PERCENT: u8 = 50;
/// The largest weight a backend may have (config, admin API). With
/// [`MAX_GROUP_BACKENDS`] it bounds a round-robin cycle at 10⁹ slots, which
/// its arithmetic needs below 2³², and it is HAProxy's order of magnitude
/// (256 there, 1000 in nginx-plus's API); 10,000 leaves room for shares in
/// basis points.
pub const MAX_WEIGHT: u32 = 10_000;
/// The most backends one group may hold: the config's `backends` list is
/// refused past it, the admin API refuses to add past it, and DNS discovery
/// leaves out what does not fit. Every group change costs O(n log n) off the
/// workers, and n is bounded here (a 437,000-backend config once passed
/// `check` and then never served).
pub const MAX_GROUP_BACKENDS: usize = 100_000;

/// Backends given by name are resolved again this often (DNS discovery:
/// Kubernetes headless Services, Consul DNS).
pub const RESOLVE_INTERVAL: Duration = Duration::from_secs(5);

/// The sticky cookie's name (`[upstream.NAME.sticky] cookie`).
pub const STICKY_COOKIE: &str = "sluice_sticky";
/// The sticky cookie's `Path`.
pub const STICKY_PATH: &str = "/";
/// The shortest configured sticky `secret`, in bytes: a cookie carries an
/// HMAC of the key, and a short key can be guessed offline from one.
pub const STICKY_MIN_SECRET: usize = 16;
/// Longest sticky cookie name and path: they go in every `Set-Cookie`.
pub const STICKY_MAX_ATTR: usize = 256;

/// Response compression is off unless asked for, like nginx's `gzip off`:
/// it costs CPU on every compressed response. A route's `compress` overrides it.
pub const COMPRESSION_ENABLED: bool = false;
/// gzip level 1, nginx's `gzip_comp_level` default: the cheapest level
/// already removes most of the bytes of text (64 KiB of JSON → 8.2 KB);
/// 6 takes 18 % more off for about three times the CPU. Levels are zlib's,
/// as nginx's are (`proxy::compress::zlib_rs_level`,
/// perf/findings/2026-12-01-gzip-level1.md).
pub const COMPRESSION_LEVEL: u32 = 1;
/// Only gzip unless more are listed: turning compression on keeps doing
/// what it did before brotli and zstd existed, and a coding a client's
/// middlebox mishandles (Traefik's users met that with zstd) is an opt-in.
pub const COMPRESSION_ALGORITHMS: &[&str] = &["gzip"];
/// Brotli quality 3 (Envoy's default too): on the bench's 64 KiB JSON it
/// writes 6.1 KB, less than gzip 6's 6.8 KB, for about 2.2× gzip 1's
/// instructions; quality 4 and up cost more for little on such bodies, and
/// 11 is for precompressed files (perf/findings/2026-12-02-brotli-zstd.md).
pub const COMPRESSION_BROTLI_LEVEL: u32 = 3;
/// Brotli window 2^18 = 256 KiB (its own default is 4 MiB; Envoy's is 18
/// too): bounds the ring buffer each stream holds, and setting up the
/// larger one cost more instructions than compressing a 64 KiB response.
pub const COMPRESSION_BROTLI_WINDOW_LOG: u32 = 18;
/// zstd level 3, libzstd's own default.
pub const COMPRESSION_ZSTD_LEVEL: i32 = 3;
/// zstd window 2^18 = 256 KiB: without it a stream of unknown size gets
/// the level's window (2 MiB at level 3) and the tables to match, per
/// response: Traefik dropped zstd from its defaults after running out of
/// memory that way (traefik/traefik#10859).
pub const COMPRESSION_ZSTD_WINDOW_LOG: u32 = 18;
/// Known-length responses shorter than 1 KiB are sent as they are: gzip's
/// 18 bytes of framing and the CPU buy little there (nginx's
/// `gzip_min_length` idea; its own default of 20 is lower).
pub const COMPRESSION_MIN_LENGTH: u64 = 1024;
/// Media types worth compressing: text, and the structured formats that are
/// text (`+json`, `+xml` match any `type/x+json`). Images other than SVG,
/// video and archives are already compressed.
pub const COMPRESSION_TYPES: &[&str] = &[
    "text/*",
    "application/json",
    "application/javascript",
    "application/xml",
    "image/svg+xml",
    "+json",
    "+xml",
];

/// Keys one rate limit remembers (client addresses, header values). An
/// entry is about 64 bytes, so 65,536 keys cost about 4 MiB per limit; past
/// it, refilled buckets are dropped first, then the least recently seen.
pub const RATE_LIMIT_MAX_KEYS: usize = 65_536;
/// A `key = "client"` limit's bucket per IPv4 address: an IPv4 host has one.
pub const RATE_LIMIT_IPV4_PREFIX: u8 = 32;
/// A `key = "client"` limit's bucket per IPv6 /64: the block one host, or
/// one LAN, is given (RFC 6177), within which it may pick any address.
pub const RATE_LIMIT_IPV6_PREFIX: u8 = 64;
/// Largest `max_keys` a rate limit may ask for (about 64 MiB).
pub const RATE_LIMIT_MAX_KEYS_CAP: usize = 1 << 20;
/// How often a replica syncs its global rate limits with Redis: the longer,
/// the more replicas may together overshoot the shared rate (up to each
/// one's local bucket per interval), the fewer round trips.
pub const GLOBAL_SYNC_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for Redis on one sync; past it the sync counts as failed and
/// the limits stay local until Redis answers again.
pub const GLOBAL_SYNC_TIMEOUT: Duration = Duration::from_millis(250);
/// Tries of a request on a route with `[route.retry]`, the first included:
/// one retry, Envoy's `num_retries` default.
pub const RETRY_ATTEMPTS: u32 = 2;
/// The most tries a route may ask for; past a few, retries only add load.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;
/// Statuses retried on another backend: the gateway errors (Envoy's
/// `gateway-error`), the ones a backend gives when it, not the request, failed.
pub const RETRY_STATUSES: &[u16] = &[502, 503, 504];
/// Exponential backoff with full jitter between tries: the n-th retry waits
/// a uniform random time in `[0, min(max, base * 2^(n-1))]`. Envoy's 25 ms
/// base and 10x cap.
pub const RETRY_BACKOFF_BASE: Duration = Duration::from_millis(25);
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_millis(250);
/// Request body bytes kept so that a request can be sent again: a body
/// larger than this streams on, but is no longer retried. 64 KiB covers
/// most API calls, and is Envoy's `per_request_buffer_limit_bytes` order.
pub const RETRY_REPLAY_BUFFER: usize = 64 * 1024;
/// The largest replay buffer a route may ask for (per request in flight).
pub const MAX_RETRY_REPLAY_BUFFER: usize = 16 * 1024 * 1024;
/// A group's retry budget, Linkerd's defaults: retries may add 20 % to the
/// requests of the last 10 s, plus 10 per second so that a quiet group can
/// still retry. It keeps retries from multiplying an outage.
pub const RETRY_BUDGET_RATIO: f64 = 0.2;
pub const RETRY_BUDGET_MIN_PER_SECOND: u32 = 10;
pub const RETRY_BUDGET_TTL: Duration = Duration::from_secs(10);

/// Share of new traces (no sampled parent) whose spans are exported:
/// all, OpenTelemetry's default (`parentbased_always_on`).
pub const TRACE_SAMPLE_RATIO: f64 = 1.0;
/// `service.name` of the proxy's spans.
pub const TRACE_SERVICE_NAME: &str = "sluice";
/// Spans in one OTLP export request (OpenTelemetry's
/// `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`).
pub const TRACE_BATCH_SIZE: usize = 512;
/// Longest a finished span waits for its batch to fill.
pub const TRACE_BATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Finished spans waiting for the exporter; past it new spans are dropped
/// and counted (OpenTelemetry's `OTEL_BSP_MAX_QUEUE_SIZE`).
pub const TRACE_MAX_QUEUE: usize = 2048;
/// Longest one export request may take, connect included; past it the
/// batch is lost and counted (OpenTelemetry's `OTEL_EXPORTER_OTLP_TIMEOUT`).
pub const TRACE_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest `batch_size` and `max_queue`: bounds the exporter's memory
/// (each span holds at most a request target, a host and a tracestate).
pub const TRACE_MAX_BOUND: usize = 1 << 20;
