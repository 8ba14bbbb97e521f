//! Several servers on one PostgreSQL database (runs when `PALISADE_TEST_PG_URL` is set):
//! the quota holds across servers and a change made through one reaches a long poll on another.

mod common;

use common::*;

fn two_servers(args: &[&str]) -> Option<(Server, Server)> {
    let Some(url) = fresh_database() else {
        println!("skipped: set PALISADE_TEST_PG_URL to run the multi-server tests");
        return None;
    };
    let a = Server::start_with(args, Some(url.clone()));
    let b = Server::start_with(args, Some(url));
    Some((a, b))
}

#[test]
fn quota_holds_across_two_servers() {
    let Some((a, b)) = two_servers(&["--rule-quota", "30"]) else {
        return;
    };
    let (ca, cb) = (a.client(), b.client());
    let g = ca.create_group(&[]);
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let c = if t % 2 == 0 { ca.clone() } else { cb.clone() };
            let g = g.clone();
            std::thread::spawn(move || {
                let mut ok = 0;
                for i in 0..8 {
                    let port = format!("{}/{}", 2000 + (t * 5 + i) % 50, 2000 + (t * 5 + i) % 50);
                    let r = c.call(
                        "AuthorizeSecurityGroup",
                        &[
                            ("SecurityGroupId", &g),
                            ("IpProtocol", "udp"),
                            ("PortRange", &port),
                            ("SourceCidrIp", "10.0.0.0/8"),
                        ],
                    );
                    match (r.status, r.code().as_str()) {
                        (200, _) => ok += 1,
                        (403, "AuthorizationLimitExceed")
                        | (400, "InvalidPermission.Duplicate") => {}
                        other => panic!("unexpected {other:?}: {}", r.text),
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let rules = cb.rules(&g, &[]);
    assert_eq!((ok, rules.len()), (30, 30));
    assert_eq!(distinct_port_ranges(&rules), 30);
}

#[test]
fn a_change_through_one_server_wakes_a_poll_on_the_other() {
    let Some((a, b)) = two_servers(&[]) else {
        return;
    };
    let (ca, cb) = (a.client(), b.client());
    let g = ca.create_group(&[]);
    let rev = cb.ok("WaitForChange", &[("Revision", "0"), ("WaitSeconds", "0")])["Revision"]
        .as_u64()
        .unwrap();
    let waiter = {
        let cb = cb.clone();
        std::thread::spawn(move || {
            cb.ok(
                "WaitForChange",
                &[("Revision", &rev.to_string()), ("WaitSeconds", "30")],
            )
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    ca.ok(
        "AuthorizeSecurityGroup",
        &[
            ("SecurityGroupId", &g),
            ("IpProtocol", "tcp"),
            ("PortRange", "22/22"),
            ("SourceCidrIp", "10.0.0.0/8"),
        ],
    );
    let r = waiter.join().unwrap();
    assert!(r["Revision"].as_u64().unwrap() > rev, "{r}");
    // A nonce used on one server is refused by the other.
    let p = ca.common("DescribeRegions", "JSON");
    assert_eq!(ca.send_signed("POST", p.clone()).status, 200);
    let r = cb.send_signed("POST", p);
    assert_eq!((r.status, r.code().as_str()), (400, "SignatureNonceUsed"));
}
