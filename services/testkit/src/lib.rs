//! What two or more services' test suites share: real servers started on a
//! free loopback port for one test and stopped after it, and a parser of
//! the services' `GET /metrics`. Dev-dependency only.

pub mod certs;
pub mod exposition;
pub mod redis_server;
