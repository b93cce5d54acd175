//! The root chain's rules, each refusal with its reason.
use tallytree_proto::SigningKey;

use super::*;

fn key() -> SigningKey {
    SigningKey::generate().expect("key").0
}

fn root(version: u64, keys: &[&SigningKey], threshold: u32, node: &SigningKey) -> pb::Root {
    pb::Root {
        region: "210000000000".into(),
        name: "辽宁省".into(),
        version,
        keys: keys.iter().map(|k| k.public_key().0.to_vec()).collect(),
        threshold,
        node_key: node.public_key().0.to_vec(),
        issued_at_ms: 1_000 * version as i64,
        expires_ms: 0,
    }
}

#[test]
fn two_rotations_walk_from_the_first_root_and_old_node_keys_keep_their_window() {
    let (a, b, c, d) = (key(), key(), key(), key());
    let (n1, n2) = (key(), key());
    let r1 = sign_root(&root(1, &[&a], 1, &n1), &[&a]);
    // Version 2: two keys, threshold 2, signed by version 1's key and both of its own.
    let r2 = sign_root(&root(2, &[&b, &c], 2, &n1), &[&a, &b, &c]);
    // Version 3: a new node key; two of version 2's and its own key.
    let r3 = sign_root(&root(3, &[&d], 1, &n2), &[&b, &c, &d]);
    let mut chain = RootChain::of(RootView::pinned(&r1).expect("pinned"));
    chain
        .walk(&[r3.clone(), r2.clone(), r1.clone()], 0)
        .expect("walks");
    assert_eq!(chain.latest().version, 3);
    let keys = chain.node_keys();
    assert_eq!(keys.len(), 2);
    assert_eq!((keys[0].1, keys[0].2), (n1.public_key(), Some(3_000)));
    assert_eq!((keys[1].1, keys[1].2), (n2.public_key(), None));

    // Pinning version 2 and offering the whole chain works too.
    let mut from2 = RootChain::of(RootView::pinned(&r2).expect("pinned"));
    from2
        .walk(&[r1.clone(), r2.clone(), r3.clone()], 0)
        .expect("walks");
    assert_eq!(from2.latest().version, 3);
    // Pinning the latest, the earlier roots are known by the signatures
    // their keys put on their successors: the old node key with them.
    let mut from3 = RootChain::of(RootView::pinned(&r3).expect("pinned"));
    from3.walk(&[r1.clone(), r2.clone(), r3], 0).expect("walks");
    assert_eq!(from3.roots().len(), 3);
    assert_eq!(from3.node_keys(), keys);
    // An earlier root its successor's signatures do not endorse is not.
    let stranger = key();
    let fake1 = sign_root(&root(1, &[&stranger], 1, &stranger), &[&stranger]);
    let mut from2 = RootChain::of(RootView::pinned(&r2).expect("pinned"));
    from2.walk(&[fake1], 0).expect("ignored");
    assert_eq!(from2.roots().len(), 1);
}

#[test]
fn a_missing_link_a_rollback_a_fork_and_an_expired_root_are_refused() {
    let (a, b, c) = (key(), key(), key());
    let n = key();
    let r1 = sign_root(&root(1, &[&a], 1, &n), &[&a]);
    let r2 = sign_root(&root(2, &[&b], 1, &n), &[&a, &b]);
    let r3 = sign_root(&root(3, &[&c], 1, &n), &[&b, &c]);
    let pinned = RootView::pinned(&r1).expect("pinned");

    let err = RootChain::of(pinned.clone())
        .walk(std::slice::from_ref(&r3), 0)
        .expect_err("gap");
    assert!(
        matches!(
            err,
            RootError::MissingLink {
                trusted: 1,
                missing: 2,
                offered: 3
            }
        ),
        "{err}"
    );

    // A second version 1, validly signed by a, is not the pinned one.
    let mut other = root(1, &[&a], 1, &n);
    other.name = "假冒".into();
    let rolled = sign_root(&other, &[&a]);
    let err = RootChain::of(pinned.clone())
        .walk(&[r2.clone(), rolled], 0)
        .expect_err("rollback");
    assert_eq!(err, RootError::Rollback { version: 1 });

    let mut fork = root(2, &[&c], 1, &n);
    fork.name = "另一个".into();
    let forked = sign_root(&fork, &[&a, &c]);
    let err = RootChain::of(pinned.clone())
        .walk(&[r2.clone(), forked], 0)
        .expect_err("fork");
    assert_eq!(err, RootError::Fork { version: 2 });

    // Only the final root's expiry counts.
    let mut expiring = root(2, &[&b], 1, &n);
    expiring.expires_ms = 5_000;
    let r2e = sign_root(&expiring, &[&a, &b]);
    let mut chain = RootChain::of(pinned.clone());
    let err = chain
        .walk(std::slice::from_ref(&r2e), 6_000)
        .expect_err("expired");
    assert!(
        matches!(err, RootError::Expired { version: 2, .. }),
        "{err}"
    );
    let r3b = sign_root(&root(3, &[&c], 1, &n), &[&b, &c]);
    RootChain::of(pinned)
        .walk(&[r2e, r3b], 6_000)
        .expect("an expired intermediate root is fine");
}

#[test]
fn a_signature_counts_once_and_new_keys_alone_do_not_rotate() {
    let (a, b, c) = (key(), key(), key());
    let n = key();
    let r1 = sign_root(&root(1, &[&a, &b], 2, &n), &[&a, &b]);
    let pinned = RootView::pinned(&r1).expect("pinned");

    // Version 2 signed twice by a (and by its own key c): one of the two
    // keys version 1 requires.
    let mut dup = sign_root(&root(2, &[&c], 1, &n), &[&a, &c]);
    let again = dup.signatures[0].clone();
    dup.signatures.push(again);
    let err = RootChain::of(pinned.clone())
        .walk(&[dup], 0)
        .expect_err("a duplicate signature counted once");
    assert_eq!(
        err,
        RootError::Threshold {
            version: 2,
            whose: "version 1".into(),
            signed: 1,
            of: 2,
            needed: 2
        }
    );

    // Signed only by its own new keys.
    let own_only = sign_root(&root(2, &[&c], 1, &n), &[&c]);
    let err = RootChain::of(pinned.clone())
        .walk(&[own_only], 0)
        .expect_err("new keys only");
    assert!(
        matches!(err, RootError::Threshold { signed: 0, .. }),
        "{err}"
    );

    // Signed by version 1 but not by its own keys.
    let old_only = sign_root(&root(2, &[&c], 1, &n), &[&a, &b]);
    let err = RootChain::of(pinned)
        .walk(&[old_only], 0)
        .expect_err("not by its own");
    assert!(err.to_string().contains("of its own"), "{err}");

    // A root's content rules.
    let bad = sign_root(&root(1, &[&a], 2, &n), &[&a]);
    assert!(
        RootView::pinned(&bad)
            .expect_err("threshold")
            .to_string()
            .contains("threshold")
    );
    let bad = sign_root(&root(1, &[&a, &a], 1, &n), &[&a]);
    assert!(
        RootView::pinned(&bad)
            .expect_err("twice")
            .to_string()
            .contains("listed twice")
    );
}
