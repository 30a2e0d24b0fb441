//! The RFC conformance suite (`sluice_e2e::conformance`) against Sluice:
//! every case must pass, except those whose `sluice_differs` says why
//! Sluice does something else on purpose; those must still fail, so that
//! the note goes when the difference does.

use sluice_e2e::conformance::{RecordingOrigin, Target, cases, run};
use sluice_e2e::harness::proxy::{Proxy, config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_passes_every_conformance_case() {
    let origin = RecordingOrigin::start().await;
    let proxy = Proxy::start(&config(&[origin.addr()])).await;
    let target = Target {
        h1: proxy.addr(),
        h2c: proxy.addr(),
    };
    let mut wrong = Vec::new();
    for case in cases::all() {
        let outcome = run(&case, target, &origin).await;
        match (outcome.passed(), case.sluice_differs) {
            (true, None) | (false, Some(_)) => {}
            (false, None) => wrong.push(format!(
                "{} ({}): {}\n    observed: {}",
                case.id,
                case.section,
                outcome.failures.join("; "),
                outcome.observed.summary()
            )),
            (true, Some(why)) => {
                wrong.push(format!("{} passes now: drop its note ({why})", case.id))
            }
        }
    }
    proxy.shutdown().await;
    assert!(
        wrong.is_empty(),
        "{} case(s) wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
