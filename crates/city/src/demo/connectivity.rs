//! Fixed broadband and 5G coverage per commune-level unit, as key performance
//! indicators. The figures are demo: higher in wards, lower in the mountains.

use super::Demo;
use crate::Result;
use crate::admin::UnitKind;
use crate::rng::Rng;

/// Units in the mountains and on the western plateau, where coverage is thinnest.
pub(super) const REMOTE: [&str; 22] = [
    "18904", "18919", "18922", "18943", "18901", "18949", "18952", "18958", "19147", "19204",
    "19318", "19564", "19588", "19594", "19567", "19555", "19435", "19441", "19462", "19483",
    "19489", "19138",
];

pub(super) fn coverage(d: &mut Demo) -> Result<()> {
    for unit in d.all {
        let mut rng = Rng::new(&format!("coverage-{}", unit.code));
        let remote = REMOTE.contains(&unit.code.as_str());
        let (broadband, five_g) = match unit.kind {
            UnitKind::Ward => ((85.0, 97.0), (75.0, 98.0)),
            UnitKind::SpecialZone => ((50.0, 70.0), (40.0, 80.0)),
            _ if remote => ((35.0, 65.0), (5.0, 35.0)),
            _ => ((60.0, 88.0), (30.0, 70.0)),
        };
        let at = d.label("coverage", unit)?;
        for (slug, range, vi, en) in [
            (
                "broadband",
                broadband,
                "Tỷ lệ hộ gia đình có băng rộng cố định",
                "Households with fixed broadband",
            ),
            (
                "5g",
                five_g,
                "Tỷ lệ dân số được phủ sóng 5G",
                "Population covered by 5G",
            ),
        ] {
            let e = d.unit_kpi(slug, (vi, en), unit, at);
            let percent = rng.value(range.0, range.1, 1);
            let attrs = d.surveyed_percent("digitalInfrastructure", slug, percent);
            d.push(e, attrs);
        }
    }
    Ok(())
}
