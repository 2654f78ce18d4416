//! The cluster over a real nats-server with JetStream on loopback: membership through
//! heartbeats with a TTL, session ownership by compare-and-set leases, `GET /v1/cluster`,
//! graceful leave; hosts in-process with the real CLI against the project's mock API.

use std::time::Duration;

use claude_code_serve::cluster::{owner_key, Claim, ClusterError, Leases};
use claude_code_tests::{eventually, NatsServer};

#[tokio::test]
async fn two_claimers_racing_for_one_session_get_exactly_one_winner() {
    let nats = NatsServer::start();
    let lease = Duration::from_secs(30);
    for round in 0..5 {
        let mut handles = Vec::new();
        for node in ["node-a", "node-b", "node-c"] {
            handles.push(
                Leases::connect(&nats.url(), node, lease)
                    .await
                    .expect("connect"),
            );
        }
        let session = format!("race-{round}");
        let claims =
            futures::future::join_all(handles.iter().map(|l| l.claim("acme", &session))).await;
        let winners: Vec<usize> = claims
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, Ok(Claim::Won)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {claims:?}");
        let winner = ["node-a", "node-b", "node-c"][winners[0]];
        for (i, c) in claims.iter().enumerate() {
            if i != winners[0] {
                match c {
                    Ok(Claim::Held(l)) => assert_eq!(l.owner, winner),
                    // A loser that read between the winner's write and its own is told
                    // to retry; retrying then reports the holder.
                    Err(ClusterError::Contended { .. }) => {
                        let again = handles[i].claim("acme", &session).await.expect("retry");
                        assert!(
                            matches!(&again, Claim::Held(l) if l.owner == winner),
                            "{again:?}"
                        );
                    }
                    other => panic!("round {round}: loser {i} got {other:?}"),
                }
            }
        }
        let key = owner_key("acme", &session);
        assert!(handles[winners[0]].holds(&key));
        assert_eq!(
            handles.iter().filter(|h| h.holds(&key)).count(),
            1,
            "only the winner believes it holds the lease"
        );
    }
}

#[tokio::test]
async fn an_unrenewed_lease_is_taken_over_and_the_old_owner_learns_it_lost() {
    let nats = NatsServer::start();
    let lease = Duration::from_millis(1500);
    let a = Leases::connect(&nats.url(), "node-a", lease)
        .await
        .expect("a");
    let b = Leases::connect(&nats.url(), "node-b", lease)
        .await
        .expect("b");
    assert_eq!(a.claim("acme", "s1").await.expect("claim"), Claim::Won);
    // While the lease runs, B cannot have it, and A's renewal keeps it.
    let held = b.claim("acme", "s1").await.expect("claim");
    assert!(
        matches!(&held, Claim::Held(l) if l.owner == "node-a"),
        "{held:?}"
    );
    a.renew("acme", "s1").await.expect("the owner renews");
    // A stops renewing (a stall, a partition): once the lease ends, B takes it over.
    let taken = eventually(
        Duration::from_secs(10),
        "B takes over the expired lease",
        || async {
            match b.claim("acme", "s1").await {
                Ok(Claim::Won) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let _: () = taken;
    let owner = a.owner("acme", "s1").await.expect("read").expect("a lease");
    assert_eq!(owner.owner, "node-b");
    // A, renewing, sees it lost the lease and to whom; it no longer holds it.
    let key = owner_key("acme", "s1");
    match a.renew("acme", "s1").await {
        Err(ClusterError::LeaseLost { key: k, owner }) => {
            assert_eq!(k, key);
            assert_eq!(owner.as_deref(), Some("node-b"));
        }
        other => panic!("the old owner's renewal must fail with LeaseLost: {other:?}"),
    }
    assert!(!a.holds(&key) && a.lost(&key));
    // Its release does not touch B's lease.
    a.release("acme", "s1").await.expect("release is a no-op");
    assert_eq!(
        b.owner("acme", "s1")
            .await
            .expect("read")
            .map(|l| l.owner)
            .as_deref(),
        Some("node-b")
    );
    // B releases; A can claim it again at once.
    b.release("acme", "s1").await.expect("release");
    assert_eq!(b.owner("acme", "s1").await.expect("read"), None);
    assert_eq!(a.claim("acme", "s1").await.expect("claim"), Claim::Won);
    assert!(!a.lost(&key));
}
