//! Kubernetes resource quantities (`2Gi`, `1.5G`, `512Mi`, `2e9`) as numbers: the operator
//! checks memory limits at start (`config`) and against each room's DVR window (`memory`).

/// Bytes of a Kubernetes quantity (`2Gi`, `1.5G`, `512Mi`, `2e9`, `2147483648`), rounded
/// up; `None` for anything else (negative, empty, unknown suffix, overflow).
pub fn quantity_bytes(quantity: &str) -> Option<u64> {
    let quantity = quantity.trim();
    let split = quantity
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 2f64.powi(10),
        "Mi" => 2f64.powi(20),
        "Gi" => 2f64.powi(30),
        "Ti" => 2f64.powi(40),
        "Pi" => 2f64.powi(50),
        "Ei" => 2f64.powi(60),
        exponent => {
            let digits = exponent.strip_prefix(['e', 'E'])?;
            10f64.powi(digits.parse::<i32>().ok()?)
        }
    };
    if !number.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = (number.parse::<f64>().ok()? * scale).ceil();
    // `u64::MAX as f64` rounds up to 2^64, so `<` keeps the cast in range.
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn quantities_parse_like_kubernetes() {
        for (quantity, bytes) in [
            ("2Gi", 2 * GIB),
            ("512Mi", 512 * MIB),
            ("1.5Gi", 3 * GIB / 2),
            ("2G", 2_000_000_000),
            ("2e9", 2_000_000_000),
            ("2E", 2_000_000_000_000_000_000),
            ("2147483648", 2_147_483_648),
            ("1500m", 2),
            (" 1k ", 1_000),
        ] {
            assert_eq!(quantity_bytes(quantity), Some(bytes), "{quantity}");
        }
    }

    #[test]
    fn anything_else_is_not_a_quantity() {
        for bad in [
            "",
            "Gi",
            "-1Gi",
            "2X",
            "1e999",
            "1.2.3",
            "2 Gi",
            "\u{0}",
            "99999999999999999999999Ei",
        ] {
            assert_eq!(quantity_bytes(bad), None, "{bad:?}");
        }
    }
}
