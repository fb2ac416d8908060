//! The coordination properties: leases, the once-set, fences.

use super::*;

/// A lease has one holder: others get `HeldBy` with the holder's name and
/// the time left, and of 8 concurrent acquirers exactly one wins.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn lease_is_exclusive(h: &dyn Harness) {
    let c = h.coordination().await;
    let key = unique("lease");
    let ttl = Duration::from_secs(10);
    assert_eq!(
        c.leases.acquire(&key, "alice", ttl).await.unwrap(),
        LeaseOutcome::Acquired
    );
    match c.leases.acquire(&key, "bob", ttl).await.unwrap() {
        LeaseOutcome::HeldBy { holder, remaining } => {
            assert_eq!(holder, "alice");
            assert!(
                remaining > Duration::from_secs(5) && remaining <= ttl,
                "{remaining:?}"
            );
        }
        other => panic!("bob got {other:?}"),
    }
    assert_eq!(
        c.leases.acquire(&key, "alice", ttl).await.unwrap(),
        LeaseOutcome::Acquired,
        "the holder re-acquires"
    );

    let contested = unique("contested");
    let outcomes = join_all((0..8).map(|i| {
        let (leases, key) = (&c.leases, &contested);
        async move { leases.acquire(key, &format!("w{i}"), ttl).await.unwrap() }
    }))
    .await;
    let winners = outcomes
        .iter()
        .filter(|o| **o == LeaseOutcome::Acquired)
        .count();
    assert_eq!(winners, 1, "{outcomes:?}");
}

/// Only the holder renews or releases; after a release anyone may take it.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn lease_renew_and_release_only_by_holder(h: &dyn Harness) {
    let c = h.coordination().await;
    let key = unique("lease");
    let ttl = Duration::from_secs(10);
    c.leases.acquire(&key, "alice", ttl).await.unwrap();
    assert!(!c.leases.renew(&key, "bob", ttl).await.unwrap());
    assert!(!c.leases.release(&key, "bob").await.unwrap());
    assert!(matches!(
        c.leases.acquire(&key, "bob", ttl).await.unwrap(),
        LeaseOutcome::HeldBy { holder, .. } if holder == "alice"
    ));
    assert!(c.leases.renew(&key, "alice", ttl).await.unwrap());
    assert!(c.leases.release(&key, "alice").await.unwrap());
    assert!(!c.leases.release(&key, "alice").await.unwrap(), "released");
    assert!(
        !c.leases.renew(&key, "alice", ttl).await.unwrap(),
        "released"
    );
    assert_eq!(
        c.leases.acquire(&key, "bob", ttl).await.unwrap(),
        LeaseOutcome::Acquired
    );
    assert!(c.leases.release(&key, "bob").await.unwrap());
}

/// An unrenewed lease frees itself after its ttl; a renewed one does not.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn lease_expires_unless_renewed(h: &dyn Harness) {
    let c = h.coordination().await;
    let (lapsed, kept) = (unique("lapsed"), unique("kept"));
    let ttl = Duration::from_millis(300);
    c.leases.acquire(&lapsed, "alice", ttl).await.unwrap();
    c.leases.acquire(&kept, "alice", ttl).await.unwrap();
    h.sleep(Duration::from_millis(150)).await;
    assert!(
        c.leases
            .renew(&kept, "alice", Duration::from_secs(10))
            .await
            .unwrap()
    );
    h.sleep(Duration::from_millis(300)).await;
    assert!(
        !c.leases.renew(&lapsed, "alice", ttl).await.unwrap(),
        "expired"
    );
    assert_eq!(
        c.leases.acquire(&lapsed, "bob", ttl).await.unwrap(),
        LeaseOutcome::Acquired
    );
    assert!(matches!(
        c.leases.acquire(&kept, "bob", ttl).await.unwrap(),
        LeaseOutcome::HeldBy { .. }
    ));
    assert!(c.leases.release(&kept, "alice").await.unwrap());
}

/// `first` is true once per key within its ttl (once among concurrent
/// callers too), and again after the ttl.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn once_set_is_true_once(h: &dyn Harness) {
    let c = h.coordination().await;
    let (nonce, other) = (unique("nonce"), unique("nonce"));
    let ttl = Duration::from_secs(10);
    assert!(c.once.first(&nonce, ttl).await.unwrap());
    assert!(!c.once.first(&nonce, ttl).await.unwrap(), "replay");
    assert!(!c.once.first(&nonce, ttl).await.unwrap(), "replay");
    assert!(c.once.first(&other, ttl).await.unwrap());

    let contested = unique("nonce");
    let firsts = join_all((0..8).map(|_| c.once.first(&contested, ttl))).await;
    let firsts = firsts.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(firsts, 1);

    let short = unique("nonce");
    assert!(
        c.once
            .first(&short, Duration::from_millis(300))
            .await
            .unwrap()
    );
    h.sleep(Duration::from_millis(450)).await;
    assert!(
        c.once.first(&short, ttl).await.unwrap(),
        "forgotten after ttl"
    );
}

/// Fences only move up, exactly over the whole `u64` range, under
/// concurrent advances too, and are forgotten after their ttl.
///
/// # Panics
///
/// On the first broken expectation.
pub async fn fences_only_move_up(h: &dyn Harness) {
    let c = h.coordination().await;
    let f = &c.fences;
    let ttl = Duration::from_secs(10);
    let key = unique("fence");
    assert_eq!(f.current(&key).await.unwrap(), None);
    assert_eq!(f.advance(&key, 5, ttl).await.unwrap(), 5);
    assert_eq!(f.advance(&key, 3, ttl).await.unwrap(), 5);
    assert_eq!(f.current(&key).await.unwrap(), Some(5));
    assert_eq!(f.advance(&key, 7, ttl).await.unwrap(), 7);

    for (low, high) in [
        (9, 10),
        (1 << 53, (1 << 53) + 1),
        (u64::MAX - 1, u64::MAX),
        (0, 1),
    ] {
        let key = unique("fence");
        assert_eq!(f.advance(&key, high, ttl).await.unwrap(), high);
        assert_eq!(
            f.advance(&key, low, ttl).await.unwrap(),
            high,
            "{low} < {high}"
        );
        let key = unique("fence");
        assert_eq!(f.advance(&key, low, ttl).await.unwrap(), low);
        assert_eq!(
            f.advance(&key, high, ttl).await.unwrap(),
            high,
            "{low} < {high}"
        );
    }

    let key = unique("fence");
    let order = [17u64, 3, 50, 1, 49, 25, 8, 42, 33, 11];
    join_all(order.iter().map(|&v| f.advance(&key, v, ttl))).await;
    assert_eq!(f.current(&key).await.unwrap(), Some(50));

    let short = unique("fence");
    f.advance(&short, 9, Duration::from_millis(300))
        .await
        .unwrap();
    h.sleep(Duration::from_millis(450)).await;
    assert_eq!(
        f.current(&short).await.unwrap(),
        None,
        "forgotten after ttl"
    );
}
