//! Five levels converge: cases recorded at the villages reach the province,
//! whose total is exactly the sum of what the villages recorded; a change at
//! a village reaches it too; and the province can drill down to every
//! village, each figure verified.

mod fed;

use fed::{
    CITY, Casebook, DISTRICT, Federation, PROVINCE, STREET, STREET_2, VILLAGE_1, VILLAGE_2,
    VILLAGE_3, closed, day, open_case, past_month, revisions, rows, sum, total, wait_total,
};
use tallytree_proto::{RegionCode, pb, statement};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_levels_converge_and_a_village_change_reaches_the_province() {
    fed::init_log();
    let units = [
        PROVINCE, CITY, DISTRICT, STREET, VILLAGE_1, VILLAGE_2, STREET_2, VILLAGE_3,
    ];
    let federation = Federation::start(&units).await;
    let month = past_month();
    let villages = [VILLAGE_1, VILLAGE_2, VILLAGE_3];
    let mut books = [
        Casebook::default(),
        Casebook::default(),
        Casebook::default(),
    ];

    // Each village records a different mix: states, categories, on time or late.
    let land = open_case("YHM-1", pb::Category::Land, &day(month, 2));
    books[0]
        .record(
            federation.at(VILLAGE_1.0),
            vec![
                land.clone(),
                closed(
                    &open_case("YHM-2", pb::Category::Neighbour, &day(month, 3)),
                    pb::CaseState::Resolved,
                    &day(month, 10),
                ),
                closed(
                    &open_case("YHM-3", pb::Category::Labour, &day(month, 4)),
                    pb::CaseState::Escalated,
                    &day(month, 5),
                ),
            ],
        )
        .await;
    books[1]
        .record(
            federation.at(VILLAGE_2.0),
            (0..5)
                .map(|i| {
                    open_case(
                        &format!("SS-{i}"),
                        pb::Category::MarriageFamily,
                        &day(month, 1 + i),
                    )
                })
                .collect(),
        )
        .await;
    // One resolved within the default 30-day deadline (on time), one
    // resolved after the deadline it was given (late), one still open.
    let late = pb::Case {
        deadline: day(month, 5),
        ..open_case("ZJ-3", pb::Category::Debt, &day(month, 2))
    };
    books[2]
        .record(
            federation.at(VILLAGE_3.0),
            vec![
                closed(
                    &open_case("ZJ-1", pb::Category::Debt, &day(month, 1)),
                    pb::CaseState::Resolved,
                    &day(month, 28),
                ),
                open_case("ZJ-2", pb::Category::Property, &day(month, 15)),
                closed(&late, pb::CaseState::Resolved, &day(month, 20)),
            ],
        )
        .await;

    let expected =
        |books: &[Casebook; 3]| sum(&books.iter().map(|b| b.tally(month)).collect::<Vec<_>>());
    let province = federation.at(PROVINCE.0);
    let row = wait_total(province, month, expected(&books)).await;
    assert_eq!(row.children_reported, 1, "{row:?}");
    assert_eq!(row.children_expected, 1, "{row:?}");
    let registered = total(&row).case_totals().registered;
    assert_eq!(registered, 11, "{row:?}");
    // Debt: ZJ-1 resolved on time, ZJ-3 late.
    let debt = total(&row)
        .category(tallytree_proto::Category::Debt)
        .to_owned();
    assert_eq!((debt.resolved, debt.resolved_on_time), (2, 1), "{row:?}");

    // Depth 4 at the province: every level, named, verified, adding up.
    let period = month.to_string();
    let drill = rows(province, "", &period, 4).await.expect("query answers");
    let want: Vec<(&str, &str, &str, u32)> = vec![
        (PROVINCE.0, PROVINCE.1, "province", 0),
        (CITY.0, CITY.1, "city", 1),
        (DISTRICT.0, DISTRICT.1, "district", 2),
        (STREET.0, STREET.1, "street", 3),
        (VILLAGE_1.0, VILLAGE_1.1, "village", 4),
        (VILLAGE_2.0, VILLAGE_2.1, "village", 4),
        (STREET_2.0, STREET_2.1, "street", 3),
        (VILLAGE_3.0, VILLAGE_3.1, "village", 4),
    ];
    let got: Vec<(&str, &str, &str, u32)> = drill
        .iter()
        .map(|r| {
            (
                r.region.as_str(),
                r.name.as_str(),
                r.level.as_str(),
                r.depth,
            )
        })
        .collect();
    assert_eq!(got, want, "{drill:#?}");
    for r in &drill {
        assert!(r.verified, "{} not verified: {r:?}", r.region);
        assert_eq!(r.months.len(), 1, "{} has no figures: {r:?}", r.region);
        // Complete: every enrolled child reported.
        assert_eq!(r.children_reported, r.children_expected, "{r:?}");
        assert!(r.months_missing.is_empty(), "{r:?}");
    }
    let row_of = |code: &str| {
        drill
            .iter()
            .find(|r| r.region == code)
            .map(total)
            .expect("row present")
    };
    for (v, book) in villages.iter().zip(&books) {
        assert_eq!(row_of(v.0), book.tally(month), "village {}", v.0);
    }
    assert_eq!(
        row_of(STREET.0),
        sum(&[books[0].tally(month), books[1].tally(month)])
    );
    assert_eq!(row_of(STREET_2.0), books[2].tally(month));
    assert_eq!(row_of(DISTRICT.0), expected(&books));
    assert_eq!(row_of(CITY.0), expected(&books));
    let district = drill.iter().find(|r| r.region == DISTRICT.0).expect("row");
    assert_eq!(
        (district.children_reported, district.children_expected),
        (2, 2)
    );

    // The province can also be asked about one village directly, and holds
    // the village's own signed summaries (Audit), verifiable with its key.
    for (v, book) in villages.iter().zip(&books) {
        let one = rows(province, v.0, &period, 0)
            .await
            .expect("query answers");
        assert_eq!(one.len(), 1);
        assert_eq!(total(&one[0]), book.tally(month));
        let code = RegionCode::parse(v.0).expect("code");
        let held = revisions(province, code, month).await;
        let (env, view) = held
            .last()
            .expect("the province holds the village's summary");
        assert_eq!(view.total, book.tally(month));
        let key = federation.unit(v.0).public_key;
        statement::open::<pb::Summary>(env, &key).expect("signed by the village's key");
    }

    // A quarter, a year and a range that hold the month add up the same.
    let quarter = format!("{}-Q{}", month.year(), (month.month() - 1) / 3 + 1);
    let range = format!("{}..{}", fed::month_before(month), month);
    for p in [quarter, month.year().to_string(), range] {
        let r = rows(province, "", &p, 0).await.expect("query answers");
        assert_eq!(total(&r[0]), expected(&books), "period {p}: {r:?}");
        assert!(r[0].verified, "{r:?}");
    }

    // A change at one village (a case resolved, one added) reaches the top.
    let before = revisions(province, federation.unit(VILLAGE_1.0).region(), month).await;
    books[0]
        .record(
            federation.at(VILLAGE_1.0),
            vec![
                closed(&land, pb::CaseState::Resolved, &day(month, 20)),
                open_case("YHM-4", pb::Category::Medical, &day(month, 25)),
            ],
        )
        .await;
    let row = wait_total(province, month, expected(&books)).await;
    assert_eq!(total(&row).case_totals().registered, 12);
    let after = revisions(province, federation.unit(VILLAGE_1.0).region(), month).await;
    let (_, latest) = after.last().expect("held");
    assert!(
        latest.revision > before.last().expect("held").1.revision,
        "the village's new revision reached the province"
    );
    assert_eq!(latest.total, books[0].tally(month));
    // The other villages' figures are unchanged.
    let drill = rows(province, "", &period, 4).await.expect("query answers");
    for (v, book) in villages.iter().zip(&books) {
        let r = drill.iter().find(|r| r.region == v.0).expect("row");
        assert_eq!(total(r), book.tally(month), "village {}", v.0);
        assert!(r.verified);
    }

    federation.shutdown().await;
}
