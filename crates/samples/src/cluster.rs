//! Brokers as real child processes (the `lasthop broker` command), so that a
//! crash is a real `kill -9`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// A running `lasthop broker`.
#[derive(Debug)]
pub struct BrokerProcess {
    child: Child,
    pub addr: String,
}

/// How to start a broker again after a crash: same store, same address.
#[derive(Debug, Clone)]
pub struct BrokerSpec {
    pub exe: PathBuf,
    pub store: PathBuf,
    pub listen: String,
    pub otlp: String,
    pub args: Vec<String>,
}

impl BrokerSpec {
    pub fn new(
        exe: &Path,
        store: PathBuf,
        otlp: &str,
        args: &[&str],
    ) -> std::io::Result<BrokerSpec> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        Ok(BrokerSpec {
            exe: exe.to_owned(),
            store,
            listen: format!("127.0.0.1:{port}"),
            otlp: otlp.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
        })
    }

    pub fn start(&self) -> std::io::Result<BrokerProcess> {
        let mut child = Command::new(&self.exe)
            .args([
                "broker",
                "--listen",
                &self.listen,
                "--otlp",
                &self.otlp,
                "--store",
            ])
            .arg(&self.store)
            .args(&self.args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut banner = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut banner)?;
        if banner.is_empty() {
            let _ = child.kill();
            return Err(std::io::Error::other("the broker did not start"));
        }
        Ok(BrokerProcess {
            child,
            addr: self.listen.clone(),
        })
    }
}

impl BrokerProcess {
    /// Sends a signal, e.g. `-STOP` to freeze a process and `-CONT` to resume it.
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status();
    }

    /// A power cut or crash: no chance to flush or export anything.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A clean stop: flushes, exports its spans.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
