//! Shamir secret sharing as sops uses it for key groups (HashiCorp Vault's scheme): each byte of the
//! data key is the constant term of a random polynomial over GF(2⁸) (the AES field, x⁸+x⁴+x³+x+1); a
//! share is the polynomial's values at one x for every byte, followed by that x. Any `threshold`
//! shares give the key back by Lagrange interpolation at zero.
//!
//! kdeploy reads files sops split this way; it does not split keys itself.

/// Multiplication in GF(2⁸) modulo x⁸+x⁴+x³+x+1 (carry-less, reduced as it goes).
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

/// The multiplicative inverse (a²⁵⁴); `a` must not be zero.
fn inverse(a: u8) -> u8 {
    let mut result = 1u8;
    let mut base = a;
    let mut exponent = 254u8;
    while exponent != 0 {
        if exponent & 1 != 0 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exponent >>= 1;
    }
    result
}

/// The secret from `shares` (each `secret bytes… x`), at least the threshold of them.
pub fn combine(shares: &[Vec<u8>]) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    let Some(first) = shares.first() else {
        return Err("no shares".into());
    };
    if shares.len() < 2 {
        return Err("at least two shares are needed".into());
    }
    let length = first.len();
    if length < 2 || shares.iter().any(|s| s.len() != length) {
        return Err("the shares differ in length".into());
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[length - 1]).collect();
    for (i, x) in xs.iter().enumerate() {
        if xs[..i].contains(x) {
            return Err("two shares have the same x coordinate".into());
        }
    }
    let mut secret = zeroize::Zeroizing::new(vec![0u8; length - 1]);
    for (position, byte) in secret.iter_mut().enumerate() {
        // Lagrange interpolation at x = 0: sum of y_i * prod_{j != i} x_j / (x_j - x_i); minus is xor.
        let mut value = 0u8;
        for (i, share) in shares.iter().enumerate() {
            let mut basis = 1u8;
            for (j, &xj) in xs.iter().enumerate() {
                if i != j {
                    basis = mul(basis, mul(xj, inverse(xj ^ xs[i])));
                }
            }
            value ^= mul(share[position], basis);
        }
        *byte = value;
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits like HashiCorp's `shamir.Split` (for the test only; x coordinates given).
    fn split(secret: &[u8], xs: &[u8], threshold: usize) -> Vec<Vec<u8>> {
        let mut random = [0u8; 64];
        getrandom::fill(&mut random).unwrap();
        let mut shares: Vec<Vec<u8>> = xs.iter().map(|_| Vec::new()).collect();
        for (position, &byte) in secret.iter().enumerate() {
            let coefficients: Vec<u8> = std::iter::once(byte)
                .chain((1..threshold).map(|k| random[(position * 7 + k) % random.len()] | 1))
                .collect();
            for (share, &x) in shares.iter_mut().zip(xs) {
                let mut y = 0u8;
                for &c in coefficients.iter().rev() {
                    y = mul(y, x) ^ c;
                }
                share.push(y);
            }
        }
        for (share, &x) in shares.iter_mut().zip(xs) {
            share.push(x);
        }
        shares
    }

    #[test]
    fn field_arithmetic_is_the_aes_field() {
        assert_eq!(mul(0x57, 0x83), 0xc1, "FIPS-197's worked example");
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1);
        }
    }

    #[test]
    fn any_threshold_of_shares_gives_the_secret_back() {
        let secret: Vec<u8> = (0..32).map(|i| i * 7 + 3).collect();
        let shares = split(&secret, &[17, 200, 3, 99], 3);
        assert_eq!(*combine(&shares[..3]).unwrap(), secret);
        assert_eq!(
            *combine(&[shares[3].clone(), shares[0].clone(), shares[2].clone()]).unwrap(),
            secret
        );
        assert_ne!(
            *combine(&shares[..2]).unwrap(),
            secret,
            "too few shares give something else"
        );
        assert!(combine(&[shares[0].clone(), shares[0].clone()]).is_err());
    }
}
