//! Colormaps and the paper-style overlay, as pure functions on pixels (natively tested; the app
//! and the CLI draw the same bytes).

use colorgrad::{BlendMode, Color, Gradient, GradientBuilder, LinearGradient};
use image::RgbImage;

/// A map from [0, 1] to colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// Matplotlib/OpenCV "jet", the paper's figures.
    #[default]
    Jet,
    /// Google's Turbo: jet's look, perceptually smoother.
    Turbo,
    /// Perceptually uniform, colour-blind friendly.
    Viridis,
    /// Perceptually uniform, dark to bright.
    Inferno,
}

impl Colormap {
    /// All maps, in menu order.
    pub const ALL: [Colormap; 4] = [Self::Jet, Self::Turbo, Self::Viridis, Self::Inferno];

    /// Lower-case name (CLI flag, URL parameter).
    pub fn name(self) -> &'static str {
        match self {
            Self::Jet => "jet",
            Self::Turbo => "turbo",
            Self::Viridis => "viridis",
            Self::Inferno => "inferno",
        }
    }

    /// A 256-entry RGB lookup table.
    pub fn lut(self) -> Vec<[u8; 3]> {
        let gradient: Box<dyn Gradient> = match self {
            Self::Jet => Box::new(jet()),
            Self::Turbo => Box::new(colorgrad::preset::turbo()),
            Self::Viridis => Box::new(colorgrad::preset::viridis()),
            Self::Inferno => Box::new(colorgrad::preset::inferno()),
        };
        (0..256)
            .map(|i| {
                let [r, g, b, _] = gradient.at(i as f32 / 255.0).to_rgba8();
                [r, g, b]
            })
            .collect()
    }
}

impl std::str::FromStr for Colormap {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("unknown colormap `{s}` (jet, turbo, viridis, inferno)"))
    }
}

/// Matplotlib's `jet` from its piecewise-linear channel definition: every breakpoint of any
/// channel becomes a stop, so linear RGB blending between stops reproduces it exactly.
fn jet() -> LinearGradient {
    type Segments = &'static [(f32, f32)];
    const R: Segments = &[
        (0.0, 0.0),
        (0.35, 0.0),
        (0.66, 1.0),
        (0.89, 1.0),
        (1.0, 0.5),
    ];
    const G: Segments = &[
        (0.0, 0.0),
        (0.125, 0.0),
        (0.375, 1.0),
        (0.64, 1.0),
        (0.91, 0.0),
        (1.0, 0.0),
    ];
    const B: Segments = &[
        (0.0, 0.5),
        (0.11, 1.0),
        (0.34, 1.0),
        (0.65, 0.0),
        (1.0, 0.0),
    ];
    fn eval(seg: Segments, x: f32) -> f32 {
        let i = seg
            .iter()
            .rposition(|&(p, _)| p <= x)
            .unwrap_or(0)
            .min(seg.len() - 2);
        let ((x0, y0), (x1, y1)) = (seg[i], seg[i + 1]);
        y0 + (y1 - y0) * ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    }
    let mut stops: Vec<f32> = [R, G, B]
        .iter()
        .flat_map(|s| s.iter().map(|&(p, _)| p))
        .collect();
    stops.sort_by(f32::total_cmp);
    stops.dedup();
    let colors: Vec<Color> = stops
        .iter()
        .map(|&x| Color::new(eval(R, x), eval(G, x), eval(B, x), 1.0))
        .collect();
    GradientBuilder::new()
        .colors(&colors)
        .domain(&stops)
        .mode(BlendMode::Rgb)
        .build::<LinearGradient>()
        .expect("static, valid stops")
}

/// Colours a map with values in [0, 1] (out-of-range values are clamped; NaN → 0).
pub fn colorize(map: &[f32], lut: &[[u8; 3]]) -> Vec<[u8; 3]> {
    map.iter()
        .map(|&v| {
            let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) };
            lut[(v * 255.0) as usize]
        })
        .collect()
}

/// Blends a colourised map over the image: `image·(1 − α) + heat·α` per channel. The paper's
/// figures use α = 0.6. `map` must be `height × width` of the image.
pub fn overlay(image: &RgbImage, map: &[f32], lut: &[[u8; 3]], alpha: f32) -> RgbImage {
    let heat = colorize(map, lut);
    let mut out = image.clone();
    for (pixel, color) in out.pixels_mut().zip(heat) {
        for (channel, heat) in pixel.0.iter_mut().zip(color) {
            *channel = blend(*channel, heat, alpha);
        }
    }
    out
}

/// One channel of the overlay: `image·(1 − α) + heat·α`, rounded.
pub fn blend(image: u8, heat: u8, alpha: f32) -> u8 {
    let v = f32::from(image) * (1.0 - alpha) + f32::from(heat) * alpha;
    v.round().clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jet_endpoints_and_middle_match_matplotlib() {
        let lut = Colormap::Jet.lut();
        assert_eq!(lut[0], [0, 0, 128]); // (0, 0, 0.5)
        assert_eq!(lut[255], [128, 0, 0]); // (0.5, 0, 0)
        // jet(0.5) ≈ (0.49, 1.0, 0.48) in matplotlib.
        let [r, g, b] = lut[128];
        assert!(
            (120..=130).contains(&r) && g == 255 && (118..=128).contains(&b),
            "{:?}",
            lut[128]
        );
    }

    #[test]
    fn every_map_has_256_entries_and_parses_by_name() {
        for map in Colormap::ALL {
            assert_eq!(map.lut().len(), 256);
            assert_eq!(map.name().parse::<Colormap>().unwrap(), map);
        }
        assert!("rainbow".parse::<Colormap>().is_err());
    }

    #[test]
    fn overlay_blends_and_clamps() {
        let img = RgbImage::from_pixel(2, 1, image::Rgb([100, 100, 100]));
        let lut = vec![[0, 0, 0]; 255]
            .into_iter()
            .chain([[200, 200, 200]])
            .collect::<Vec<_>>();
        let out = overlay(&img, &[f32::NAN, 7.0], &lut, 0.6);
        assert_eq!(out.get_pixel(0, 0).0, [40, 40, 40]);
        assert_eq!(out.get_pixel(1, 0).0, [160, 160, 160]);
    }
}
