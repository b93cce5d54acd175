//! A parent that is down for a while loses nothing: while the street is
//! stopped its village keeps recording and signing, the revisions wait in
//! the village's outbox, and once the street is back (same data, same port)
//! the outbox drains and the province converges to the villages' sum.

mod fed;

use fed::{
    CITY, Casebook, DISTRICT, Federation, PROVINCE, STREET, VILLAGE_1, VILLAGE_2, closed, day,
    month_before, open_case, open_store, past_month, revisions, rows, sum, total, wait_total,
};
use tallytree_node::store::{Cf, Store, layout};
use tallytree_proto::{pb, statement};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parent_that_is_down_loses_nothing_and_the_outbox_drains() {
    fed::init_log();
    let mut federation =
        Federation::start(&[PROVINCE, CITY, DISTRICT, STREET, VILLAGE_1, VILLAGE_2]).await;
    let month = past_month();
    // Owned: the federation is stopped and restarted in between.
    let v1 = federation.at(VILLAGE_1.0).clone();
    let v2 = federation.at(VILLAGE_2.0).clone();
    let province = federation.at(PROVINCE.0).clone();
    let mut books = [Casebook::default(), Casebook::default()];

    let first = open_case("YHM-1", pb::Category::Neighbour, &day(month, 3));
    books[0]
        .record(
            &v1,
            vec![
                first.clone(),
                open_case("YHM-2", pb::Category::Land, &day(month, 4)),
            ],
        )
        .await;
    books[1]
        .record(
            &v2,
            vec![open_case("SS-1", pb::Category::Property, &day(month, 5))],
        )
        .await;
    let expected = |books: &[Casebook; 2]| sum(&[books[0].tally(month), books[1].tally(month)]);
    let before = wait_total(&province, month, expected(&books)).await;

    // The street goes down; the village keeps working.
    federation.stop(STREET.0).await;
    books[0]
        .record(
            &v1,
            vec![
                closed(&first, pb::CaseState::Resolved, &day(month, 9)),
                open_case("YHM-3", pb::Category::Debt, &day(month, 12)),
            ],
        )
        .await;
    books[0]
        .record(
            &v1,
            vec![open_case("YHM-4", pb::Category::Debt, &day(month, 13))],
        )
        .await;
    // Another month, and the other village, change too.
    let earlier = month_before(month);
    books[0]
        .record(
            &v1,
            vec![open_case("YHM-0", pb::Category::Other, &day(earlier, 20))],
        )
        .await;
    books[1]
        .record(
            &v2,
            vec![open_case("SS-2", pb::Category::Medical, &day(month, 6))],
        )
        .await;
    // The villages have signed their changes (so they wait in their
    // outboxes) ...
    wait_total(&v1, month, books[0].tally(month)).await;
    wait_total(&v1, earlier, books[0].tally(earlier)).await;
    wait_total(&v2, month, books[1].tally(month)).await;
    // ... and nothing of it reached the province.
    let during = rows(&province, "", &month.to_string(), 0)
        .await
        .expect("the province still answers");
    assert_eq!(total(&during[0]), total(&before));

    // The street comes back on the same port and data directory.
    federation.restart(STREET.0).await;
    let row = wait_total(&province, month, expected(&books)).await;
    assert_eq!(total(&row).case_totals().registered, 6);
    wait_total(&province, earlier, books[0].tally(earlier)).await;

    // The province holds each village's latest revision of each month, the
    // ones signed while their parent was down; and each village's outbox
    // drained: empty, with the street's receipt for each of those revisions.
    let street_key = federation.unit(STREET.0).public_key;
    for (v, months) in [
        (VILLAGE_1, vec![(month, &books[0]), (earlier, &books[0])]),
        (VILLAGE_2, vec![(month, &books[1])]),
    ] {
        let unit = federation.unit(v.0);
        let mut latest = Vec::new();
        for (m, book) in months {
            let held = revisions(&province, unit.region(), m).await;
            let (env, view) = held.last().expect("held");
            assert_eq!(view.total, book.tally(m), "{} {m}", v.0);
            statement::open::<pb::Summary>(env, &unit.public_key).expect("the village's signature");
            latest.push((m, view.revision));
        }
        federation.stop(v.0).await;
        let unit = federation.unit(v.0);
        let store = open_store(&unit.config.data_dir).await;
        assert_eq!(layout::outbox(&store).expect("outbox"), vec![], "{}", v.0);
        for (m, revision) in latest {
            let receipt = store
                .get(Cf::Receipts, &layout::receipt_key(m, revision))
                .expect("read")
                .unwrap_or_else(|| panic!("{} has no receipt for {m} revision {revision}", v.0));
            let receipt = layout::envelope_of(&receipt, "receipts").expect("an envelope");
            let receipt: pb::Receipt =
                statement::open(&receipt, &street_key).expect("signed by the street");
            assert_eq!(
                (receipt.region.as_str(), receipt.period, receipt.revision),
                (v.0, m.to_string(), revision)
            );
        }
    }
    federation.shutdown().await;
}
