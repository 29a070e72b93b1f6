//! The tour's D-Bus step: a service and a client on a private `dbus-daemon` (when one is
//! installed), then the same service served peer to peer with no daemon at all.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gruvi::dbus::{Connection, Interface, MethodError, Server};
use gruvi::fiber::{self, Hub};

const PATH: &str = "/com/example/Tour";
const IFACE: &str = "com.example.Tour";

fn interface() -> Interface {
    Interface::new(IFACE)
        .method("Greet", ("who",), ("greeting",), |_, (who,): (String,)| {
            Ok((format!("hello, {who}"),))
        })
        .method("Nap", ("ms",), (), |_, (ms,): (u32,)| {
            fiber::sleep(Duration::from_millis(ms.into()))
                .map_err(|e| MethodError::failed(e.to_string()))
        })
        .signal::<(u32,)>("Tick", ("n",))
}

/// A private bus, killed when dropped; its directory (config and socket) goes with it.
struct Daemon(Child, #[allow(dead_code)] tempfile::TempDir);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `dbus-daemon` on a socket in a temporary directory; `None` if it is not installed.
fn start_daemon() -> Result<Option<(Daemon, String)>, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("bus.conf");
    std::fs::write(
        &config,
        format!(
            r#"<busconfig><type>session</type><listen>unix:path={}/bus</listen>
<policy context="default"><allow send_destination="*" eavesdrop="true"/>
<allow eavesdrop="true"/><allow own="*"/></policy></busconfig>"#,
            dir.path().display()
        ),
    )?;
    let child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--print-address=1", "--nofork", "--nopidfile", "--nosyslog"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Ok(None);
    };
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let daemon = Daemon(child, dir);
    let mut address = String::new();
    BufReader::new(stdout).read_line(&mut address)?;
    Ok(Some((daemon, address.trim().to_owned())))
}

pub fn tour() -> Result<(), Box<dyn std::error::Error>> {
    println!("[dbus] D-Bus with blocking calls on fibers");
    let hub = Hub::current();
    match start_daemon()? {
        Some((daemon, address)) => on_a_bus(&address, daemon)?,
        None => println!("  (dbus-daemon is not installed: skipping the bus part)"),
    }
    peer_to_peer()?;
    let left = hub.close();
    println!("  hub closed, {left} handles left open");
    Ok(())
}

fn on_a_bus(address: &str, daemon: Daemon) -> Result<(), Box<dyn std::error::Error>> {
    println!("  started a private dbus-daemon (pid {})", daemon.0.id());
    let service = Connection::connect(address)?;
    service.export(PATH, interface())?;
    service.request_name("com.example.Tour", 0)?;
    let client = Connection::connect(address)?;
    println!(
        "  service is {}, client is {}; the bus lists {} names",
        service.unique_name().unwrap_or_default(),
        client.unique_name().unwrap_or_default(),
        client.list_names()?.len()
    );
    let ticks = client.add_match("type='signal',interface='com.example.Tour',member='Tick'")?;
    // Two naps of 200 ms at once take 200 ms: each call runs in its own fiber on both sides.
    let start = std::time::Instant::now();
    let naps: Vec<_> = (0..2)
        .map(|_| {
            let c = client.clone();
            fiber::spawn(move || {
                c.call_method::<_, ()>("com.example.Tour", PATH, IFACE, "Nap", (200u32,))
            })
        })
        .collect();
    for nap in naps {
        nap.join().map_err(|e| e.to_string())??;
    }
    println!("  two 200 ms calls at once took {:?}", start.elapsed());
    let (greeting,): (String,) =
        client.call_method("com.example.Tour", PATH, IFACE, "Greet", ("tour",))?;
    println!("  Greet(\"tour\") -> {greeting:?}");
    let err = client
        .call_method::<_, ()>("com.example.Tour", PATH, IFACE, "Missing", ())
        .unwrap_err();
    println!("  Missing() -> {err}");
    service.emit_signal(PATH, IFACE, "Tick", (1u32,))?;
    let tick = ticks.recv_timeout(Duration::from_secs(5))?;
    println!(
        "  signal Tick({}) from {} arrived through the bus",
        tick.read1::<u32>()?,
        tick.sender().map(|s| s.to_string()).unwrap_or_default()
    );
    client.close();
    service.close();
    drop(daemon);
    Ok(())
}

fn peer_to_peer() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::new();
    server.export(PATH, interface())?;
    let dir = tempfile::tempdir()?;
    let address = server.listen(&format!("unix:dir={}", dir.path().display()))?;
    println!("  peer-to-peer server at {address}");
    let client = Connection::connect(&address)?;
    let (greeting,): (String,) = client.call_method("", PATH, IFACE, "Greet", ("peer",))?;
    println!(
        "  client {} authenticated with EXTERNAL (uid {}), Greet(\"peer\") -> {greeting:?}",
        client.unique_name().unwrap_or_default(),
        server.connections()[0].peer_uid().unwrap_or(u32::MAX)
    );
    // A real tool talks to the same server while this thread keeps serving: the child
    // process is waited for by a fiber.
    let busctl = gruvi::stream::Command::new("busctl")
        .arg(format!("--address={address}"))
        .args([
            "call",
            "com.example.Tour",
            PATH,
            IFACE,
            "Greet",
            "s",
            "busctl",
        ])
        .output();
    match busctl {
        Ok(out) if out.status.success() => println!(
            "  busctl --address=... call ... Greet s busctl -> {}",
            String::from_utf8_lossy(&out.stdout).trim()
        ),
        _ => println!("  (busctl is not installed: dbus-send and gdbus work the same way)"),
    }
    client.close();
    server.close()?;
    Ok(())
}
