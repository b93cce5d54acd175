//! Every refusal class of Federation.Submit, provoked with summaries built
//! and signed by hand, is answered with its gRPC status and a message naming
//! the rule and the region; after every refusal a valid submission still
//! succeeds. The parent is a district (普兰店区) at the top of the test tree,
//! serving TLS; the test holds the signing and TLS keys of its streets and
//! of a village below one street, and submits as a street does: over mutual
//! TLS with the client certificate its enrolment gave it.

mod fed;

use fed::{
    DISTRICT, Remote, Running, STREET, STREET_2, Unit, VILLAGE_1, VILLAGE_2, VILLAGE_3, authed,
    bind_any, enrol, open_store, past_month, revisions, rows, serve, total, wait_until,
};
use prost::Message;
use tallytree_aggregator::{ChildEntry, SummaryView, Tally};
use tallytree_node::{
    config::Config,
    store::{Cf, Store, layout},
    tls::material::{Authority, RequestedKey, TlsKey},
};
use tallytree_proto::{
    Category, Digest, Month, RegionCode, SigningKey,
    pb::{self, enrolments_client::EnrolmentsClient, federation_client::FederationClient},
    statement,
};
use tonic::{
    Code, Status,
    transport::{Channel, Identity},
};

/// A unit whose keys the test holds, signs with and submits with.
struct Child {
    /// Its code.
    region: RegionCode,
    /// Its name.
    name: &'static str,
    /// Its signing key.
    key: SigningKey,
    /// Its TLS key, which its enrolment binds.
    tls: TlsKey,
    /// The client certificate its enrolment gave it, PEM; `None` until
    /// enrolled at the district.
    cert: Option<String>,
}

impl Child {
    fn new((code, name): (&str, &'static str)) -> Child {
        Child {
            region: RegionCode::parse(code).expect("code"),
            name,
            key: SigningKey::generate().expect("key").0,
            tls: TlsKey::generate().expect("TLS key"),
            cert: None,
        }
    }

    /// The certificate request of its TLS key.
    fn csr(&self) -> String {
        self.tls.csr_pem(self.region, self.name).expect("csr")
    }

    /// Federation client of `parent` over mutual TLS: `cert` (PEM) for this
    /// unit's TLS key.
    fn client_with(&self, parent: &Remote, cert: &str) -> FederationClient<Channel> {
        let identity = Identity::from_pem(cert, self.tls.private_pem());
        let endpoint = parent.endpoint_with(parent.tls().identity(identity));
        FederationClient::new(endpoint.connect_lazy())
    }

    /// Federation client of `parent` with the certificate of this unit's
    /// enrolment there.
    fn client(&self, parent: &Remote) -> FederationClient<Channel> {
        self.client_with(parent, self.cert.as_deref().expect("enrolled"))
    }

    /// A summary of this unit for `period`, issued now.
    fn view(
        &self,
        period: Month,
        revision: u64,
        local: Tally,
        children: &[(ChildEntry, Tally)],
        children_expected: u32,
    ) -> SummaryView {
        let total = children.iter().fold(local, |acc, (_, t)| {
            acc.checked_add(t).expect("no overflow")
        });
        SummaryView {
            region: self.region,
            name: self.name.into(),
            parent: self.region.parent(),
            period,
            revision,
            issued_at_ms: chrono::Utc::now().timestamp_millis(),
            local,
            total,
            children: children.iter().map(|(c, _)| *c).collect(),
            children_expected,
        }
    }

    /// `summary` signed with this unit's key.
    fn seal(&self, summary: &pb::Summary) -> pb::Envelope {
        statement::seal(&self.key, summary).envelope
    }

    /// An enrolment of `child` signed by this unit, as this unit would
    /// forward it with its submissions.
    fn enrolment_of(&self, child: &Child) -> pb::Envelope {
        let now = chrono::Utc::now().timestamp_millis();
        let e = pb::Enrolment {
            parent: self.region.to_string(),
            region: child.region.to_string(),
            name: child.name.into(),
            public_key: child.key.public_key().0.to_vec(),
            serial: 1,
            valid_from_ms: now,
            issued_at_ms: now,
            tls_spki_sha256: child.tls.spki_digest().0.to_vec(),
        };
        statement::seal(&self.key, &e).envelope
    }
}

/// `n` registered neighbour cases, `resolved` of them resolved (on time).
fn cases(n: u64, resolved: u64) -> Tally {
    let mut t = Tally::default();
    let c = t.category_mut(Category::Neighbour);
    c.registered = n;
    c.resolved = resolved;
    c.resolved_on_time = resolved;
    c.in_progress = n - resolved;
    t
}

/// Enrols `child` (its signing key and TLS key) at the district `at`, as
/// its operator, and keeps the client certificate it is given.
async fn enrol_child(at: &Remote, child: &mut Child) {
    let enrolled = enrol(
        at,
        child.region,
        child.name,
        child.key.public_key(),
        &child.csr(),
    )
    .await;
    child.cert = Some(enrolled.client_certificate);
}

/// A submission of `summary` alone.
fn request(summary: pb::Envelope) -> pb::SubmitRequest {
    pb::SubmitRequest {
        summary: Some(summary),
        ..Default::default()
    }
}

/// The district node with two enrolled streets and a village enrolled under
/// the first street (its enrolment forwarded with the street's first
/// summary).
struct Setup {
    /// The district's unit (config, key, data).
    unit: Unit,
    /// The district's node.
    node: Running,
    /// How clients reach the district's node.
    district: Remote,
    /// Federation client of the district, with the street's certificate.
    client: FederationClient<Channel>,
    /// The month submitted.
    period: Month,
    /// 铁西街道: its valid summaries prove the node keeps serving.
    street: Child,
    /// The street's latest revision accepted.
    revision: u64,
    /// 玉皇庙社区, enrolled by the street.
    village: Child,
}

impl Setup {
    async fn start() -> Setup {
        Setup::start_with(|_| {}).await
    }

    /// Like [`Setup::start`], with the district's config changed by `adjust`.
    async fn start_with(adjust: impl FnOnce(&mut Config)) -> Setup {
        fed::init_log();
        let mut unit = Unit::new(DISTRICT);
        adjust(&mut unit.config);
        let node = serve(&unit.config, bind_any().await).await;
        let district = node.remote();
        let mut street = Child::new(STREET);
        enrol_child(&district, &mut street).await;
        let client = street.client(&district);
        let village = Child::new(VILLAGE_1);
        let mut setup = Setup {
            unit,
            node,
            district,
            client,
            period: past_month(),
            street,
            revision: 0,
            village,
        };
        // Enrolled first: the summary counting it must be issued after the
        // enrolment's validity starts.
        let enrolment = setup.street.enrolment_of(&setup.village);
        let mut first = setup.valid();
        first.enrolments = vec![enrolment];
        setup.accept(first).await;
        setup
    }

    /// The next valid summary of the street: one enrolled child (the
    /// village), none counted yet, a few cases of its own.
    fn valid(&self) -> pb::SubmitRequest {
        let revision = self.revision + 1;
        let view = self
            .street
            .view(self.period, revision, cases(revision + 2, 1), &[], 1);
        request(self.street.seal(&view.to_pb()))
    }

    /// Submits as the street, expecting a receipt for the summary; returns
    /// the receipt.
    async fn accept(&mut self, req: pb::SubmitRequest) -> pb::Envelope {
        let client = self.client.clone();
        self.accept_via(client, req).await
    }

    /// Submits on `client`, expecting a receipt for the summary; returns
    /// the receipt.
    async fn accept_via(
        &mut self,
        mut client: FederationClient<Channel>,
        req: pb::SubmitRequest,
    ) -> pb::Envelope {
        let env = req.summary.clone().expect("summary");
        let s: pb::Summary = statement::peek_unverified(&env).expect("summary");
        let receipt = client
            .submit(req)
            .await
            .unwrap_or_else(|st| panic!("valid summary refused: {st:?}"))
            .into_inner()
            .receipt
            .expect("a receipt");
        let r: pb::Receipt = statement::open(&receipt, &self.unit.public_key)
            .expect("the receipt is signed by the district");
        assert_eq!(
            (r.region.as_str(), r.period.as_str(), r.revision),
            (s.region.as_str(), s.period.as_str(), s.revision)
        );
        assert_eq!(r.digest, Digest::of(&env.payload).0.to_vec());
        if s.region == self.street.region.to_string() {
            self.revision = self.revision.max(s.revision);
        }
        receipt
    }

    /// Submits as the street, expecting a refusal.
    async fn refuse(&mut self, req: pb::SubmitRequest) -> Status {
        refuse_via(self.client.clone(), req).await
    }

    /// Submits `req` as the street, expecting a refusal with `code` naming
    /// each of `parts`; then a valid summary is still accepted.
    async fn refused_as(&mut self, req: pb::SubmitRequest, code: Code, parts: &[&str]) {
        let client = self.client.clone();
        self.refused_via(client, req, code, parts).await;
    }

    /// Like [`Setup::refused_as`], submitting on `client`.
    async fn refused_via(
        &mut self,
        client: FederationClient<Channel>,
        req: pb::SubmitRequest,
        code: Code,
        parts: &[&str],
    ) {
        let st = refuse_via(client, req).await;
        assert_refused(&st, code, parts);
        self.still_serving().await;
    }

    /// A client certificate of the district's own CA for `child`'s TLS key,
    /// valid for `days` (negative: expired), as the district would issue
    /// one at enrolment.
    fn district_certificate(&self, child: &Child, days: i64) -> String {
        let tls = &self.unit.config.tls;
        let ca = Authority::load(&tls.ca_key_file, &tls.ca_file).expect("the district's CA");
        let key = RequestedKey::from_csr_pem(&child.csr()).expect("csr");
        let now = chrono::Utc::now().timestamp_millis();
        ca.issue_child_valid(&key, child.region, child.name, now, days)
            .expect("issued")
            .cert_pem
    }

    /// A valid submission still succeeds.
    async fn still_serving(&mut self) {
        let req = self.valid();
        self.accept(req).await;
    }

    /// Stops the district's node and serves its data again.
    async fn restart(self) -> Setup {
        let Setup {
            unit,
            node,
            period,
            street,
            revision,
            village,
            ..
        } = self;
        node.stop().await;
        let node = serve(&unit.config, bind_any().await).await;
        let district = node.remote();
        let client = street.client(&district);
        Setup {
            unit,
            node,
            district,
            client,
            period,
            street,
            revision,
            village,
        }
    }
}

/// Submits on `client`, expecting a refusal.
async fn refuse_via(mut client: FederationClient<Channel>, req: pb::SubmitRequest) -> Status {
    match client.submit(req).await {
        Ok(r) => panic!("accepted: {:?}", r.into_inner()),
        Err(status) => status,
    }
}

/// Checks the status code and that the message names each of `parts`.
fn assert_refused(status: &Status, code: Code, parts: &[&str]) {
    assert_eq!(status.code(), code, "{status:?}");
    for part in parts {
        assert!(
            status.message().contains(part),
            "{:?} does not name {part:?}",
            status.message()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_signatures_and_keys_that_may_not_speak_are_permission_denied() {
    let mut t = Setup::start().await;
    let street = t.street.region.to_string();

    // A payload byte changed after signing.
    let mut req = t.valid();
    if let Some(env) = req.summary.as_mut() {
        let last = env.payload.len() - 1;
        env.payload[last] ^= 0x01;
    }
    t.refused_as(req, Code::PermissionDenied, &["does not verify", &street])
        .await;

    // A key no enrolment binds (sent on the street's TLS identity, which
    // may submit for the street the summary claims).
    let stranger = Child {
        key: SigningKey::generate().expect("key").0,
        ..Child::new(STREET)
    };
    let view = stranger.view(t.period, t.revision + 1, cases(1, 0), &[], 1);
    let st = t.refuse(request(stranger.seal(&view.to_pb()))).await;
    let key_id = stranger.key.public_key().key_id();
    assert_refused(&st, Code::PermissionDenied, &["not enrolled", &key_id]);
    t.still_serving().await;

    // A second street, enrolled with keys of its own.
    let mut street_2 = Child::new(STREET_2);
    enrol_child(&t.district, &mut street_2).await;

    // The street's key speaking for street 2, on street 2's own TLS
    // identity (which may submit for street 2): the signature is refused.
    let view = street_2.view(t.period, 1, cases(1, 0), &[], 0);
    let forged = request(t.street.seal(&view.to_pb()));
    t.refused_via(
        street_2.client(&t.district),
        forged.clone(),
        Code::PermissionDenied,
        &["speaks only for itself", STREET_2.0],
    )
    .await;
    // On the street's own TLS identity it does not get that far.
    t.refused_as(
        forged,
        Code::PermissionDenied,
        &["TLS peer", "is not the TLS key enrolled for", STREET_2.0],
    )
    .await;

    // A grandchild (the village, enrolled by the street) submitting
    // straight to the district. Its enrolment, forwarded by the street,
    // binds its TLS key, for which the district issues no certificate: on
    // the street's certificate and on none, the TLS check refuses it ...
    let view = t.village.view(t.period, 1, cases(2, 2), &[], 0);
    let straight = request(t.village.seal(&view.to_pb()));
    t.refused_as(
        straight.clone(),
        Code::PermissionDenied,
        &["TLS peer", "is not the TLS key enrolled for", VILLAGE_1.0],
    )
    .await;
    t.refused_via(
        FederationClient::new(t.district.channel()),
        straight.clone(),
        Code::Unauthenticated,
        &["TLS peer: no client certificate"],
    )
    .await;
    // ... and with a certificate of the district's CA for that very key,
    // the summary is refused as not the district's child's.
    let cert = t.district_certificate(&t.village, 30);
    let village = t.village.client_with(&t.district, &cert);
    t.refused_via(
        village,
        straight,
        Code::PermissionDenied,
        &["not a direct child", VILLAGE_1.0, DISTRICT.0],
    )
    .await;

    // An enrolment the street signed for a village of another street,
    // forwarded as if it were of its subtree.
    let foreign = Child::new(VILLAGE_3);
    let mut req = t.valid();
    req.enrolments = vec![t.street.enrolment_of(&foreign)];
    t.refused_as(
        req,
        Code::InvalidArgument,
        &["not a direct child of its signer", VILLAGE_3.0, &street],
    )
    .await;

    // A revoked key: what it signed before stays counted; what it signs
    // after is refused; the unit reports again with a newly enrolled key.
    let before = street_2.view(t.period, 1, cases(3, 1), &[], 0);
    t.accept_via(
        street_2.client(&t.district),
        request(street_2.seal(&before.to_pb())),
    )
    .await;
    EnrolmentsClient::new(t.district.channel())
        .revoke(authed(pb::RevokeRequest {
            region: STREET_2.0.into(),
            public_key: street_2.key.public_key().0.to_vec(),
            reason: "key lost".into(),
            revoked_at_ms: 0,
        }))
        .await
        .expect("revoked");
    // The TLS identity of the revoked enrolment ends with it.
    let after = street_2.view(t.period, 2, cases(5, 1), &[], 0);
    t.refused_via(
        street_2.client(&t.district),
        request(street_2.seal(&after.to_pb())),
        Code::PermissionDenied,
        &["TLS peer", "revoked", STREET_2.0],
    )
    .await;

    // The district re-signs the month after the revocation (the street's
    // new revision changed it) and still counts street 2's earlier summary.
    let mut want = cases(t.revision + 2, 1)
        .checked_add(&cases(3, 1))
        .expect("sum");
    let counted = district_counts(&t, want).await;
    let street_2_row = counted
        .iter()
        .find(|r| r.region == STREET_2.0)
        .expect("row");
    assert_eq!(total(street_2_row), cases(3, 1));
    assert_eq!(street_2_row.months[0].revision, 1);
    assert!(counted.iter().all(|r| r.verified), "{counted:?}");

    // Re-enrolled with new keys, the street reports again. On its new TLS
    // identity a summary the revoked key signed after its revocation is
    // refused by its signature; on the old identity even the new key's.
    let mut renewed = Child::new(STREET_2);
    enrol_child(&t.district, &mut renewed).await;
    let late = street_2.view(t.period, 2, cases(5, 1), &[], 0);
    t.refused_via(
        renewed.client(&t.district),
        request(street_2.seal(&late.to_pb())),
        Code::PermissionDenied,
        &["signed by key", "revoked at", STREET_2.0],
    )
    .await;
    let view = renewed.view(t.period, 2, cases(5, 1), &[], 0);
    t.refused_via(
        street_2.client(&t.district),
        request(renewed.seal(&view.to_pb())),
        Code::PermissionDenied,
        &["TLS peer", "is not the TLS key enrolled for", STREET_2.0],
    )
    .await;
    t.accept_via(
        renewed.client(&t.district),
        request(renewed.seal(&view.to_pb())),
    )
    .await;
    want = cases(t.revision + 2, 1)
        .checked_add(&cases(5, 1))
        .expect("sum");
    district_counts(&t, want).await;
}

/// Over TLS a summary comes only from the child it speaks for, on a
/// certificate of the district's CA whose key is the TLS key that child's
/// latest enrolment binds. Anything else is refused before its summary is
/// looked at, and the street's own certificate keeps working throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_submission_needs_a_certificate_of_the_enrolled_tls_key() {
    let mut t = Setup::start().await;
    let street = t.street.region.to_string();

    // No client certificate.
    let req = t.valid();
    t.refused_via(
        FederationClient::new(t.district.channel()),
        req,
        Code::Unauthenticated,
        &["TLS peer: no client certificate"],
    )
    .await;

    // A certificate of the district's CA for a key the enrolment does not
    // bind.
    let other_key = Child::new(STREET);
    let cert = t.district_certificate(&other_key, 30);
    let req = t.valid();
    t.refused_via(
        other_key.client_with(&t.district, &cert),
        req,
        Code::PermissionDenied,
        &["TLS peer", "is not the TLS key enrolled for", &street],
    )
    .await;

    // For the enrolled key, but expired, or from another CA: the handshake
    // fails and the call with it.
    let expired = t.district_certificate(&t.street, -2);
    let foreign_ca = Authority::in_memory(
        RegionCode::parse(DISTRICT.0).expect("code"),
        DISTRICT.1,
        chrono::Utc::now().timestamp_millis(),
    )
    .expect("another CA");
    let foreign = foreign_ca
        .issue_child(
            &RequestedKey::from_csr_pem(&t.street.csr()).expect("csr"),
            t.street.region,
            t.street.name,
            chrono::Utc::now().timestamp_millis(),
        )
        .expect("issued")
        .cert_pem;
    for (what, cert) in [("expired", expired), ("another CA's", foreign)] {
        let req = t.valid();
        let st = refuse_via(t.street.client_with(&t.district, &cert), req).await;
        let transport = std::error::Error::source(&st)
            .and_then(|e| e.downcast_ref::<tonic::transport::Error>())
            .is_some();
        assert!(
            transport,
            "{what} certificate: not a failed connection: {st:?}"
        );
        t.still_serving().await;
    }
}

/// Waits until the district's own figures for the month are settled at
/// `want`; returns its rows to depth 1.
async fn district_counts(t: &Setup, want: Tally) -> Vec<pb::RegionRow> {
    let at = &t.district;
    let period = t.period.to_string();
    wait_until("the district's total", || {
        let period = period.clone();
        async move {
            let rows = rows(at, "", &period, 1).await.map_err(|s| s.to_string())?;
            if !rows[0].pending && total(&rows[0]) == want {
                Ok(rows)
            } else {
                Err(format!("want {want:?}: {rows:?}"))
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_future_and_inconsistent_summaries_are_invalid_argument() {
    let mut t = Setup::start().await;
    let street = t.street.region.to_string();
    let next = |t: &Setup| t.revision + 1;

    // Malformed period.
    let mut s = t
        .street
        .view(t.period, next(&t), cases(1, 0), &[], 1)
        .to_pb();
    s.period = "2026-13".into();
    t.refused_as(
        request(t.street.seal(&s)),
        Code::InvalidArgument,
        &["period", "2026-13"],
    )
    .await;

    // Malformed region.
    let mut s = t
        .street
        .view(t.period, next(&t), cases(1, 0), &[], 1)
        .to_pb();
    s.region = "21021400100".into();
    t.refused_as(
        request(t.street.seal(&s)),
        Code::InvalidArgument,
        &["region", "21021400100", "12 digits"],
    )
    .await;

    // A parent field that is not the region's parent.
    let mut s = t
        .street
        .view(t.period, next(&t), cases(1, 0), &[], 1)
        .to_pb();
    s.parent = "210281000000".into();
    t.refused_as(
        request(t.street.seal(&s)),
        Code::InvalidArgument,
        &["parent", "210281000000", &street],
    )
    .await;

    // A period after the current month.
    let future = fed::this_month().next();
    let view = t.street.view(future, next(&t), cases(1, 0), &[], 1);
    t.refused_as(
        request(t.street.seal(&view.to_pb())),
        Code::InvalidArgument,
        &["in the future", &future.to_string()],
    )
    .await;

    // Revision 0.
    let view = t.street.view(t.period, 0, cases(1, 0), &[], 1);
    t.refused_as(
        request(t.street.seal(&view.to_pb())),
        Code::InvalidArgument,
        &["revision", &street],
    )
    .await;

    // Broken tally invariants: more resolved than registered; more on time
    // than resolved; tasks that do not add up.
    let mut broken = cases(1, 0);
    broken.category_mut(Category::Neighbour).resolved = 2;
    let view = t.street.view(t.period, next(&t), broken, &[], 1);
    t.refused_as(
        request(t.street.seal(&view.to_pb())),
        Code::InvalidArgument,
        &["resolved (2)", "!= registered (1)", &street],
    )
    .await;

    let mut broken = cases(2, 1);
    broken.category_mut(Category::Neighbour).resolved_on_time = 2;
    let view = t.street.view(t.period, next(&t), broken, &[], 1);
    t.refused_as(
        request(t.street.seal(&view.to_pb())),
        Code::InvalidArgument,
        &["resolved_on_time (2) > resolved (1)", &street],
    )
    .await;

    let mut broken = cases(1, 0);
    broken.tasks.assigned = 3;
    broken.tasks.completed = 1;
    let view = t.street.view(t.period, next(&t), broken, &[], 1);
    t.refused_as(
        request(t.street.seal(&view.to_pb())),
        Code::InvalidArgument,
        &["tasks", "!= assigned (3)", &street],
    )
    .await;

    // A total that is not local + children (no children: total != local).
    let mut view = t.street.view(t.period, next(&t), cases(4, 1), &[], 1);
    view.total = cases(5, 1);
    t.refused_as(
        request(t.street.seal(&view.to_pb())),
        Code::InvalidArgument,
        &[
            "total != local + sum",
            "registered is 5, the sum is 4",
            &street,
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn roll_ups_need_their_child_summaries_the_right_sums_and_counts() {
    let mut t = Setup::start().await;
    let street = t.street.region.to_string();
    let village_view = t.village.view(t.period, 1, cases(6, 5), &[], 0);
    let village_env = t.village.seal(&village_view.to_pb());
    let village_ref = ChildEntry {
        region: t.village.region,
        revision: 1,
        digest: Digest::of(&village_env.payload),
    };
    let counted = [(village_ref, village_view.total)];
    // The street's summary, the village's sent along.
    let with_village = |t: &Setup, view: &SummaryView| pb::SubmitRequest {
        descendants: vec![village_env.clone()],
        ..request(t.street.seal(&view.to_pb()))
    };

    // The village's summary referenced but neither sent nor held.
    let view = t
        .street
        .view(t.period, t.revision + 1, cases(1, 0), &counted, 1);
    t.refused_as(
        request(t.street.seal(&view.to_pb())),
        Code::FailedPrecondition,
        &["referenced but not provided", &street, VILLAGE_1.0],
    )
    .await;

    // Sent, but the street's total is not local + the village's total.
    let mut view = t
        .street
        .view(t.period, t.revision + 1, cases(1, 0), &counted, 1);
    view.total = cases(8, 5);
    let req = with_village(&t, &view);
    t.refused_as(
        req,
        Code::InvalidArgument,
        &["total != local + sum of 1 child totals", &street],
    )
    .await;

    // A reference whose revision is not the summary's.
    let wrong = [(
        ChildEntry {
            revision: 2,
            ..village_ref
        },
        village_view.total,
    )];
    let view = t
        .street
        .view(t.period, t.revision + 1, cases(1, 0), &wrong, 1);
    let req = with_village(&t, &view);
    t.refused_as(
        req,
        Code::InvalidArgument,
        &["does not match its reference", &street, VILLAGE_1.0],
    )
    .await;

    // Completeness: more children expected than enrolled, and more counted
    // than expected.
    let view = t
        .street
        .view(t.period, t.revision + 1, cases(1, 0), &counted, 3);
    let req = with_village(&t, &view);
    t.refused_as(
        req,
        Code::InvalidArgument,
        &[
            "children_expected is 3 but 1 children are enrolled",
            &street,
        ],
    )
    .await;

    let view = t
        .street
        .view(t.period, t.revision + 1, cases(1, 0), &counted, 0);
    let req = with_village(&t, &view);
    t.refused_as(
        req,
        Code::InvalidArgument,
        &["1 children counted but only 0 expected", &street],
    )
    .await;

    // Done right, the district verifies and keeps the village's summary too,
    // and can drill down to it.
    let view = t
        .street
        .view(t.period, t.revision + 1, cases(1, 0), &counted, 1);
    let req = with_village(&t, &view);
    t.accept(req).await;
    let held = revisions(&t.district, t.village.region, t.period).await;
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].0, village_env);
    let at = &t.district;
    let period = t.period.to_string();
    let drill = wait_until("the district counting the street", || {
        let period = period.clone();
        async move {
            let rows = rows(at, "", &period, 2).await.map_err(|s| s.to_string())?;
            let settled = !rows[0].pending && total(&rows[0]) == cases(7, 5);
            if settled {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        }
    })
    .await;
    let village = drill
        .iter()
        .find(|r| r.region == VILLAGE_1.0)
        .expect("the village's row");
    assert_eq!(total(village), cases(6, 5));
    assert_eq!(village.name, VILLAGE_1.1);
    assert!(village.verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicates_get_the_same_receipt_and_conflicting_revisions_are_already_exists() {
    let mut t = Setup::start().await;
    let street = t.street.region.to_string();

    // The same summary twice: the very same receipt, byte for byte.
    let req = t.valid();
    let revision = t.revision + 1;
    let first = t.accept(req.clone()).await;
    let again = t.accept(req.clone()).await;
    assert_eq!(again.encode_to_vec(), first.encode_to_vec());

    // The same revision with other figures.
    let view = t.street.view(t.period, revision, cases(40, 0), &[], 1);
    let conflicting = t.street.seal(&view.to_pb());
    t.refused_as(
        request(conflicting.clone()),
        Code::AlreadyExists,
        &[
            "conflicts with accepted revision",
            "equivocation",
            &street,
            &format!("revision {revision}"),
        ],
    )
    .await;

    // A lower revision never submitted, after a higher one was accepted: a
    // late delivery, superseded, refused and kept as nothing (one unit
    // signing revisions 3 and 5 is no conflict).
    for _ in 0..3 {
        t.still_serving().await;
    }
    let skipped = t.revision + 1;
    let ahead = t
        .street
        .view(t.period, skipped + 1, cases(skipped + 3, 1), &[], 1);
    t.accept(request(t.street.seal(&ahead.to_pb()))).await;
    t.revision = skipped + 1;
    let view = t.street.view(t.period, skipped, cases(41, 0), &[], 1);
    let lower = t.street.seal(&view.to_pb());
    t.refused_as(
        request(lower.clone()),
        Code::FailedPrecondition,
        &[
            &format!(
                "revision {skipped} is superseded by revision {}",
                skipped + 1
            ),
            &street,
            "nothing stored",
        ],
    )
    .await;

    // A lower revision held, with other figures: equivocation.
    let view = t.street.view(t.period, skipped - 1, cases(42, 0), &[], 1);
    let altered = t.street.seal(&view.to_pb());
    t.refused_as(
        request(altered.clone()),
        Code::AlreadyExists,
        &["conflicts with accepted revision", &street],
    )
    .await;

    // The first summary again, now stale: still its own receipt.
    let stale = t.accept(req).await;
    assert_eq!(stale.encode_to_vec(), first.encode_to_vec());

    // The node kept serving and counts the latest revision.
    district_counts(&t, cases(t.revision + 2, 1)).await;

    // Both sides of each conflict are kept as equivocation evidence.
    let Setup { unit, node, .. } = t;
    node.stop().await;
    let store = open_store(&unit.config.data_dir).await;
    let mut kept = Vec::new();
    let prefix = layout::summary_prefix(RegionCode::parse(STREET.0).expect("code"), past_month());
    store
        .scan(Cf::Evidence, &prefix, &mut |_, v| {
            kept.push(layout::envelope_of(v, "evidence").expect("envelope"));
            true
        })
        .expect("scan");
    for env in [&conflicting, &altered] {
        assert!(kept.contains(env), "evidence kept: {kept:?}");
    }
    assert!(
        !kept.contains(&lower),
        "a superseded revision is no evidence: {kept:?}"
    );
    assert!(kept.len() >= 4, "{kept:?}");
}

/// The parent keeps each child's latest accepted revision in memory; after
/// a restart it is read back from the store, and every revision rule still
/// holds: the latest and a stale revision get their own receipts again, a
/// conflicting or a skipped lower revision is refused, the next is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_revision_rules_hold_across_a_restart() {
    let mut t = Setup::start().await;
    let street = t.street.region.to_string();
    let second = t.valid();
    let second_receipt = t.accept(second.clone()).await;
    // Revision 4 next: revision 3 is never submitted.
    let view = t.street.view(t.period, 4, cases(9, 2), &[], 1);
    let fourth = request(t.street.seal(&view.to_pb()));
    let fourth_receipt = t.accept(fourth.clone()).await;

    let mut t = t.restart().await;
    let again = t.accept(fourth).await;
    assert_eq!(again.encode_to_vec(), fourth_receipt.encode_to_vec());
    let again = t.accept(second).await;
    assert_eq!(again.encode_to_vec(), second_receipt.encode_to_vec());
    // The same revision and an older one held, with other figures:
    // equivocation; the skipped one: superseded, as before the restart.
    for (revision, registered) in [(4, 40), (2, 42)] {
        let view = t
            .street
            .view(t.period, revision, cases(registered, 0), &[], 1);
        let st = t.refuse(request(t.street.seal(&view.to_pb()))).await;
        assert_refused(
            &st,
            Code::AlreadyExists,
            &[
                &format!("conflicts with accepted revision {revision}"),
                &street,
                &format!("revision {revision}"),
            ],
        );
    }
    let view = t.street.view(t.period, 3, cases(41, 0), &[], 1);
    let st = t.refuse(request(t.street.seal(&view.to_pb()))).await;
    assert_refused(
        &st,
        Code::FailedPrecondition,
        &["revision 3 is superseded by revision 4", &street],
    );
    let fifth = t.valid();
    t.accept(fifth).await;
    assert_eq!(t.revision, 5);
}

/// Forwarded enrolments are trusted all together or not at all, and only
/// once they are stored: one that does not verify refuses the submission and
/// admits none of its siblings, in memory or in the store, before and after
/// a restart. (A trusted second village would make the street's summaries,
/// which expect one child, fail the completeness rule.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_enrolment_admits_none_of_its_siblings_across_a_restart() {
    let mut t = Setup::start().await;
    let village_2 = Child::new(VILLAGE_2);
    let impostor = Child::new(STREET);
    let mut req = t.valid();
    req.enrolments = vec![
        t.street.enrolment_of(&village_2),
        impostor.enrolment_of(&Child::new(VILLAGE_2)),
    ];
    t.refused_as(
        req,
        Code::PermissionDenied,
        &["enrolment for 210214001002", "not enrolled"],
    )
    .await;
    let mut t = t.restart().await;
    t.still_serving().await;
    let Setup { unit, node, .. } = t;
    node.stop().await;
    let store = open_store(&unit.config.data_dir).await;
    let stored = layout::envelopes(&store, Cf::Enrolments, b"").expect("read");
    let village_2_code = RegionCode::parse(VILLAGE_2.0).expect("code");
    let held: Vec<pb::Enrolment> = stored
        .iter()
        .map(|e| statement::decode_stored(e).expect("enrolment"))
        .filter(|e: &pb::Enrolment| e.region == village_2_code.to_string())
        .collect();
    assert!(held.is_empty(), "stored: {held:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_oversized_submission_is_refused_and_the_node_keeps_serving() {
    let mut t = Setup::start_with(|c| c.federation.max_submission_bytes = 64 << 10).await;
    let mut req = t.valid();
    // Padding the summary goes to waste: the size is refused before anything
    // is decoded or verified.
    req.descendants = vec![pb::Envelope {
        payload: vec![0; 100 << 10],
        ..Default::default()
    }];
    t.refused_as(req, Code::OutOfRange, &["too large", "65536"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_refusal_names_the_region() {
    let mut t = Setup::start().await;
    let street = t.street.region.to_string();

    // A key no enrolment binds: the region the summary claims is named.
    let stranger = Child {
        key: SigningKey::generate().expect("key").0,
        ..Child::new(STREET)
    };
    let view = stranger.view(t.period, t.revision + 1, cases(1, 0), &[], 1);
    let st = t.refuse(request(stranger.seal(&view.to_pb()))).await;
    assert_refused(&st, Code::PermissionDenied, &["not enrolled", &street]);

    // A malformed period of a well-formed region.
    let mut s = t
        .street
        .view(t.period, t.revision + 1, cases(1, 0), &[], 1)
        .to_pb();
    s.period = "2026-13".into();
    let st = t.refuse(request(t.street.seal(&s))).await;
    assert_refused(&st, Code::InvalidArgument, &["2026-13", &street]);

    // A period in the future.
    let future = fed::this_month().next();
    let view = t.street.view(future, t.revision + 1, cases(1, 0), &[], 1);
    let st = t.refuse(request(t.street.seal(&view.to_pb()))).await;
    assert_refused(&st, Code::InvalidArgument, &["in the future", &street]);
}
