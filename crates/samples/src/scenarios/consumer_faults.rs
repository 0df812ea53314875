//! Losses at the consumer: a failure swallowed by a commit on receipt, a
//! consumer process killed after committing a batch it had not processed,
//! and a poison message that ends in the dead-letter queue.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lasthop_broker::client::AckMode;

use super::Env;
use super::support::{
    Failing, Service, dead_lettered, pay, producer, start_broker, until, wind_down,
};
use crate::ledger::Ledger;

const TIMEOUT: Duration = Duration::from_secs(3);

/// The service commits on receipt and fails on order `fault_at`: the
/// failure is swallowed.
pub(super) async fn swallowed_exception(
    env: &Env,
    paid: &Ledger,
    granted: &Ledger,
) -> std::io::Result<()> {
    let plan = &env.plan;
    let (_, broker) = start_broker(env, &[], None)?;
    let orders = producer(&broker.addr, 2, TIMEOUT);
    let failing = Failing::Always(env.order(plan.fault_at));
    let service = Service::start(env, &broker.addr, granted, AckMode::OnReceive, failing);
    for i in 1..=plan.messages {
        pay(env, &orders, paid, i).await;
    }
    wind_down(env, broker, service, || {
        granted.orders().len() + 1 >= plan.messages as usize
    })
    .await
}

/// The service can never process order `fault_at`: it is sent back, retried
/// with growing delays, then dead-lettered.
pub(super) async fn poison(env: &Env, paid: &Ledger, granted: &Ledger) -> std::io::Result<()> {
    let plan = &env.plan;
    let toml = "messageDelayLevel = \"20ms 20ms 40ms 80ms 160ms\"\nmaxReconsumeTimes = 2\n";
    let (_, broker) = start_broker(env, &[], Some(toml))?;
    let orders = producer(&broker.addr, 2, TIMEOUT);
    let failing = Failing::Always(env.order(plan.fault_at));
    let service = Service::start(env, &broker.addr, granted, AckMode::AfterProcess, failing);
    for i in 1..=plan.messages {
        pay(env, &orders, paid, i).await;
    }
    if !dead_lettered(env, &broker.addr).await? {
        return Err(std::io::Error::other(
            "the poison message never reached the dead-letter queue",
        ));
    }
    wind_down(env, broker, service, || {
        granted.orders().len() + 1 >= plan.messages as usize
    })
    .await
}

/// The consuming service as a real process (`lasthop consume`), so that a
/// crash is a `kill -9`. It writes its own ledger (`--ledger`) before a
/// message counts as processed; what it prints is only counted.
pub(super) struct ServiceProcess {
    child: Child,
    reader: Option<std::thread::JoinHandle<()>>,
    processed: Arc<AtomicUsize>,
}

impl ServiceProcess {
    pub(super) fn start(
        env: &Env,
        addr: &str,
        ack: &str,
        granted: &Ledger,
    ) -> std::io::Result<ServiceProcess> {
        let delay = env.plan.process_delay_ms.to_string();
        let mut child = Command::new(&env.exe)
            .args(["consume", "--ack", ack, "--process-delay", &delay])
            .args(["--broker", addr, "--topic", &env.topic])
            .args(["--group", &env.group, "--otlp", &env.otlp])
            .arg("--ledger")
            .arg(granted.path())
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let processed = Arc::new(AtomicUsize::new(0));
        let (stdout, count) = (child.stdout.take().expect("piped"), processed.clone());
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if line.starts_with("processed ") {
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Ok(ServiceProcess {
            child,
            reader: Some(reader),
            processed,
        })
    }

    /// How many orders it has processed (and recorded).
    pub(super) fn processed(&self) -> usize {
        self.processed.load(Ordering::SeqCst)
    }

    /// Sends a signal: `-STOP` freezes it, `-CONT` lets it go on.
    pub(super) fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status();
    }

    /// `kill -9`, then reads what it had printed.
    pub(super) fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The service commits each batch on receipt, processes slowly, and is
/// killed (`kill -9`) after `fault_at - 1` orders, once their process spans
/// have reached the collector. It comes back processing before committing;
/// two more orders are paid and it drains the topic.
pub(super) async fn consumer_crash(
    env: &Env,
    paid: &Ledger,
    granted: &Ledger,
) -> std::io::Result<()> {
    let plan = &env.plan;
    let (_, broker) = start_broker(env, &[], None)?;
    let orders = producer(&broker.addr, 2, TIMEOUT);
    for i in 1..=plan.messages {
        pay(env, &orders, paid, i).await;
    }
    let service = ServiceProcess::start(env, &broker.addr, "on-receive", granted)?;
    let before = (plan.fault_at - 1) as usize;
    until(|| service.processed() >= before).await;
    // The kill lands mid-batch, once the process spans of every order its
    // ledger holds have reached the collector: frozen, it cannot finish
    // another order between that check and the kill.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        service.signal("-STOP");
        let exported = granted.orders().iter().all(|o| (env.processed.0)(o));
        if exported || tokio::time::Instant::now() >= deadline {
            break;
        }
        service.signal("-CONT");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    service.kill9();
    let service = Service::start(
        env,
        &broker.addr,
        granted,
        AckMode::AfterProcess,
        Failing::Never,
    );
    for i in plan.messages + 1..=plan.messages + 2 {
        pay(env, &orders, paid, i).await;
    }
    wind_down(env, broker, service, || {
        (plan.messages + 1..=plan.messages + 2).all(|i| granted.orders().contains(&env.order(i)))
    })
    .await
}
