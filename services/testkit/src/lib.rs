//! What two or more services' test suites share: real servers started on a
//! free loopback port for one test and stopped after it. Dev-dependency only.

pub mod redis_server;
