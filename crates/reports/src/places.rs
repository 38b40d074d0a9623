//! Where a report is: inside the province (its boundary polygon, not its bounding box),
//! and in which of its 78 communes, by point in polygon over the `city` data set.

use city::AdminUnit;
use city::geom::Shape;

/// A commune a report falls in.
#[derive(Debug, Clone, PartialEq)]
pub struct Commune {
    pub code: String,
    pub name: String,
    pub id: String,
    /// Phường (ward) rather than xã or đặc khu.
    pub ward: bool,
}

/// The province and its communes' boundaries.
pub struct Places {
    province: Shape,
    communes: Vec<(Commune, Shape)>,
}

/// Why a point is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Outside {
    #[error("lat must be within -90..90 and long within -180..180")]
    Invalid,
    #[error("the point is outside the province of Quảng Trị")]
    Province,
}

impl Places {
    /// Built from the embedded data set (a fraction of a second: run it once).
    pub fn load() -> Result<Places, city::Error> {
        let units = city::admin::units()?;
        Ok(Places::new(&units.province, &units.units))
    }

    pub fn new(province: &AdminUnit, units: &[AdminUnit]) -> Places {
        Places {
            province: province.shape.clone(),
            communes: units
                .iter()
                .map(|u| {
                    (
                        Commune {
                            code: u.code.clone(),
                            name: u.full_name.clone(),
                            id: u.id(),
                            ward: u.kind == city::UnitKind::Ward,
                        },
                        u.shape.clone(),
                    )
                })
                .collect(),
        }
    }

    /// The commune of a point inside the province (None when it falls between the
    /// communes' boundaries, a sliver left by the sources).
    pub fn locate(&self, lon: f64, lat: f64) -> Result<Option<&Commune>, Outside> {
        if !lon.is_finite() || !lat.is_finite() || lat.abs() > 90.0 || lon.abs() > 180.0 {
            return Err(Outside::Invalid);
        }
        let p = [lon, lat];
        if !self.province.contains(p) {
            return Err(Outside::Province);
        }
        Ok(self
            .communes
            .iter()
            .find(|(_, shape)| shape.contains(p))
            .map(|(c, _)| c))
    }

    pub fn communes(&self) -> impl Iterator<Item = (&Commune, &Shape)> {
        self.communes.iter().map(|(c, s)| (c, s))
    }

    pub fn province(&self) -> &Shape {
        &self.province
    }
}
