//! A phone behind NAT, in network namespaces the test makes (iproute2's
//! `ip netns`, veth pairs, iptables MASQUERADE; addresses only inside
//! them): the switch in one (10.77.2.2), a NAT router in another (10.77.2.1
//! outside, 10.77.1.1 inside) and baresip behind it (10.77.1.2, its
//! Contact private). With the default configuration's `apply-nat-acl`
//! nat.auto, the phone registers, is called through the NAT's binding and
//! has audio both ways (it hears its tone back from 9196's echo); with the
//! NAT setting off the INVITE goes to the private Contact and never
//! arrives — the test measures something. With the NAT forgetting idle
//! UDP bindings after 3 s, `nat-options-ping` keeps the phone reachable
//! while it sends nothing; without the pings the call is lost. Skipped
//! (with a message) when not root or without `ip`/`iptables`.

mod phones_common;

use phones_common::{pump_for, share_with, DefaultConf, Phone, PhoneSetup, Transport};
use std::process::Command;
use std::time::{Duration, Instant};

const TONE: f64 = 697.0;

/// The three namespaces, deleted (with their links) when dropped.
struct Topology {
    sw: String,
    ph: String,
    all: Vec<String>,
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in &self.all {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes the namespaces, or says why it cannot.
fn topology(tag: &str, udp_timeout: Option<u32>) -> Option<Topology> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: network namespaces need root");
        return None;
    }
    for tool in ["ip", "iptables"] {
        if Command::new(tool).arg("-V").output().is_err() {
            eprintln!("skipped: no `{tool}` (Debian: iproute2, iptables)");
            return None;
        }
    }
    let id = std::process::id();
    let [sw, nat, ph] = ["sw", "nat", "ph"].map(|n| format!("hs{tag}{n}{id}"));
    let t = Topology {
        sw: sw.clone(),
        ph: ph.clone(),
        all: vec![sw.clone(), nat.clone(), ph.clone()],
    };
    for ns in &t.all {
        run(&["ip", "netns", "add", ns]);
        run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
    }
    // Links made inside the NAT's namespace: no name in the host's.
    run(&[
        "ip", "-n", &nat, "link", "add", "out", "type", "veth", "peer", "name", "eth0", "netns",
        &sw,
    ]);
    run(&[
        "ip", "-n", &nat, "link", "add", "in", "type", "veth", "peer", "name", "eth0", "netns", &ph,
    ]);
    for (ns, dev, addr) in [
        (&sw, "eth0", "10.77.2.2/24"),
        (&nat, "out", "10.77.2.1/24"),
        (&nat, "in", "10.77.1.1/24"),
        (&ph, "eth0", "10.77.1.2/24"),
    ] {
        run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
        run(&["ip", "-n", ns, "link", "set", dev, "up"]);
    }
    // The phone's way out is the NAT; the switch knows no way back to
    // 10.77.1.0/24 (only the NAT's outside address).
    run(&[
        "ip",
        "-n",
        &ph,
        "route",
        "add",
        "default",
        "via",
        "10.77.1.1",
    ]);
    run(&[
        "ip",
        "netns",
        "exec",
        &nat,
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]);
    if let Some(secs) = udp_timeout {
        // A NAT that forgets idle UDP bindings soon.
        for key in [
            "nf_conntrack_udp_timeout",
            "nf_conntrack_udp_timeout_stream",
        ] {
            let set = format!("net.netfilter.{key}={secs}");
            run(&["ip", "netns", "exec", &nat, "sysctl", "-qw", &set]);
        }
    }
    run(&[
        "ip",
        "netns",
        "exec",
        &nat,
        "iptables",
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "out",
        "-j",
        "MASQUERADE",
    ]);
    Some(t)
}

/// The default configuration on 10.77.2.2 (domain too), NAT settings as
/// shipped or with `apply-nat-acl` taken out.
fn conf(tag: &str, nat_on: bool, ping: bool) -> DefaultConf {
    let conf = DefaultConf::new(tag);
    conf.edit("vars.xml", |t| {
        t.replace("local_ip_v4=127.0.0.1", "local_ip_v4=10.77.2.2")
            .replace("data=\"domain=127.0.0.1\"", "data=\"domain=10.77.2.2\"")
    });
    if !nat_on {
        conf.edit("sip_profiles/internal.xml", |t| {
            t.replace("<param name=\"apply-nat-acl\" value=\"nat.auto\"/>", "")
        });
    }
    if ping {
        conf.edit("sip_profiles/internal.xml", |t| {
            t.replace(
                "<param name=\"apply-nat-acl\" value=\"nat.auto\"/>",
                "<param name=\"apply-nat-acl\" value=\"nat.auto\"/>\n    \
                 <param name=\"nat-options-ping\" value=\"true\"/>\n    \
                 <param name=\"ping-mean-interval\" value=\"1\"/>",
            )
        });
    }
    conf
}

/// Starts the switch and the phone behind the NAT, registered; then has
/// the switch call it. Returns whether the call reached the phone, and
/// (when it did) the share of its own tone it heard back.
fn call_through_nat(tag: &str, nat_on: bool) -> Option<(bool, f64)> {
    call_after(tag, nat_on, false, None)
}

/// As [`call_through_nat`], with keep-alive pings on or off, the NAT
/// forgetting idle bindings after 3 s and the call made after `idle`.
fn call_after(tag: &str, nat_on: bool, ping: bool, idle: Option<Duration>) -> Option<(bool, f64)> {
    let t = topology(tag, idle.map(|_| 3))?;
    let conf = conf(tag, nat_on, ping);
    let mut sw = conf.start_under(["ip", "netns", "exec", &t.sw].map(str::to_string).to_vec());
    let setup = PhoneSetup {
        ip: "10.77.1.2".into(),
        netns: Some(t.ph.clone()),
        ..PhoneSetup::new(Transport::Udp, TONE)
    };
    let mut phone = Phone::start_with("1000", &format!("10.77.2.2:{}", conf.sip_port), &setup);
    phone.wait_registered(&mut sw, "10.77.2.2");
    let reg = sw.cmd("sofia status profile internal reg");
    assert!(
        reg.contains("IP:         \t10.77.2.1"),
        "registered from the NAT's address: {reg}"
    );
    assert!(
        reg.contains("@10.77.1.2"),
        "with its private Contact: {reg}"
    );
    if let Some(idle) = idle {
        std::thread::sleep(idle);
    }
    let t0 = Instant::now();
    let r = sw.cmd("bgapi originate {originate_timeout=8}user/1000@10.77.2.2 &echo()");
    assert!(r.contains("+OK"), "{r}");
    let deadline = t0 + Duration::from_secs(10);
    while phone.seen("CALL_INCOMING", t0).is_none() {
        if Instant::now() > deadline {
            sw.cmd("hupall");
            return Some((false, 0.0));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let answered = Instant::now();
    phone.cmd("accept", "");
    phone.wait_event("CALL_ESTABLISHED", answered, &mut []);
    pump_for(&mut [&mut phone], Duration::from_secs(3));
    phone.cmd("hangup", "");
    phone.wait_event("CALL_CLOSED", answered, &mut []);
    Some((true, share_with(&phone.heard(), TONE)))
}

#[test]
fn a_phone_behind_nat_registers_is_called_through_the_binding_and_talks_both_ways() {
    let Some((reached, heard)) = call_through_nat("a", true) else {
        return;
    };
    assert!(reached, "the INVITE reached the phone through the NAT");
    assert!(
        heard > 0.3,
        "the phone heard its tone back: {:.0}% of blocks",
        heard * 100.0
    );
}

#[test]
fn without_the_nat_setting_the_invite_goes_to_the_private_contact_and_is_lost() {
    let Some((reached, _)) = call_through_nat("b", false) else {
        return;
    };
    assert!(
        !reached,
        "with apply-nat-acl off the call still reached the phone"
    );
}

#[test]
fn options_pings_keep_an_idle_nat_binding_open_for_the_call() {
    let Some((reached, heard)) = call_after("c", true, true, Some(Duration::from_secs(7))) else {
        return;
    };
    assert!(reached, "the pinged binding still led to the phone");
    assert!(
        heard > 0.3,
        "the phone heard its tone back: {:.0}%",
        heard * 100.0
    );
}

#[test]
fn without_pings_an_idle_nat_binding_expires_and_the_call_is_lost() {
    let Some((reached, _)) = call_after("d", true, false, Some(Duration::from_secs(7))) else {
        return;
    };
    assert!(!reached, "the NAT forgot the binding, yet the call arrived");
}
