//! What each aggregation method of clause 4.5.19 computes over the values of one
//! aggregation period. The database computes the same in its own language; this is the
//! definition both must agree with, and what the tests compare against.

use std::cmp::Ordering;
use std::collections::HashSet;

use serde_json::{Number, Value};

use super::params::AggrMethod;

/// Aggregates the values of the instances of one attribute in one period.
///
/// - `totalCount`: how many values there are, whatever their type.
/// - `distinctCount`: how many different values, by JSON equality: the member order of
///   objects does not matter, and numbers compare by value, so `1` and `1.0` are one
///   value (as PostgreSQL's jsonb compares them).
/// - `sum`, `avg`, `min`, `max`, `sumsq`: over the values that are JSON numbers; the
///   other values (strings, booleans, objects, ...) are skipped, since there is no
///   arithmetic on them. With no number at all the result is `null`, as SQL gives.
/// - `stddev`: the *sample* standard deviation, with n − 1 in the denominator, as
///   PostgreSQL's `stddev`: a period's values are a sample of what was measured.
///   Fewer than two numbers give `null`, since one value has no sample deviation.
///
/// The counts are JSON integers. `sum`, `sumsq`, `min` and `max` stay integers when
/// every number is an integer and the result fits 64 bits (`min` and `max` return the
/// number as it was given); `avg` and `stddev` are always floats. A float result that
/// is not finite (an overflow) is `null`, since JSON has no infinity. Floats agree with
/// a database's up to rounding in the last places.
pub fn aggregate(values: &[Value], method: AggrMethod) -> Value {
    match method {
        AggrMethod::TotalCount => Value::from(values.len()),
        AggrMethod::DistinctCount => {
            let distinct: HashSet<String> = values.iter().map(canonical).collect();
            Value::from(distinct.len())
        }
        AggrMethod::Sum => Numbers::of(values).map_or(Value::Null, |n| n.sum(|x| x, Some)),
        AggrMethod::SumSq => {
            Numbers::of(values).map_or(Value::Null, |n| n.sum(|x| x * x, |x| x.checked_mul(x)))
        }
        AggrMethod::Avg => Numbers::of(values).map_or(Value::Null, |n| float(n.mean())),
        AggrMethod::Min => Numbers::of(values).map_or(Value::Null, |n| n.extreme(Ordering::Less)),
        AggrMethod::Max => {
            Numbers::of(values).map_or(Value::Null, |n| n.extreme(Ordering::Greater))
        }
        AggrMethod::StdDev => match Numbers::of(values) {
            Some(n) if n.0.len() >= 2 => {
                let mean = n.mean();
                // Two passes rather than the sum of squares, which loses precision when
                // the values are large and close together.
                let squares: f64 = n.0.iter().map(|x| (as_f64(x) - mean).powi(2)).sum();
                float((squares / (n.0.len() - 1) as f64).sqrt())
            }
            _ => Value::Null,
        },
    }
}

/// The numbers among the values; never empty.
struct Numbers<'a>(Vec<&'a Number>);

impl<'a> Numbers<'a> {
    fn of(values: &'a [Value]) -> Option<Numbers<'a>> {
        let numbers: Vec<&Number> = values
            .iter()
            .filter_map(|v| match v {
                Value::Number(n) => Some(n),
                _ => None,
            })
            .collect();
        (!numbers.is_empty()).then_some(Numbers(numbers))
    }

    /// Σ f(x): exactly on integers when every number is one, else on floats.
    fn sum(&self, on_float: fn(f64) -> f64, on_int: fn(i128) -> Option<i128>) -> Value {
        let exact = self
            .0
            .iter()
            .try_fold(0i128, |acc, n| acc.checked_add(on_int(as_i128(n)?)?));
        match exact {
            Some(total) => integer(total),
            None => float(self.0.iter().map(|n| on_float(as_f64(n))).sum()),
        }
    }

    fn mean(&self) -> f64 {
        let exact = self
            .0
            .iter()
            .try_fold(0i128, |acc, n| acc.checked_add(as_i128(n)?));
        let total = match exact {
            Some(total) => total as f64,
            None => self.0.iter().map(|n| as_f64(n)).sum(),
        };
        total / self.0.len() as f64
    }

    /// The first number that no other is `ord` than: the minimum or the maximum.
    fn extreme(&self, ord: Ordering) -> Value {
        let mut best = self.0[0];
        for n in &self.0[1..] {
            if compare(n, best) == ord {
                best = n;
            }
        }
        Value::Number(best.clone())
    }
}

fn as_i128(n: &Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

fn as_f64(n: &Number) -> f64 {
    // Every serde_json number converts (it has no NaN); the fallback is never taken.
    n.as_f64().unwrap_or(0.0)
}

/// Numbers by value: exactly when both are integers, as floats otherwise.
fn compare(a: &Number, b: &Number) -> Ordering {
    match (as_i128(a), as_i128(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => as_f64(a).partial_cmp(&as_f64(b)).unwrap_or(Ordering::Equal),
    }
}

fn integer(n: i128) -> Value {
    if let Ok(i) = i64::try_from(n) {
        Value::from(i)
    } else if let Ok(u) = u64::try_from(n) {
        Value::from(u)
    } else {
        float(n as f64)
    }
}

fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// A text that two values share exactly when they are the same JSON value: object
/// members sorted, integral numbers written as integers.
fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Number(n) => {
            out.push('#');
            match as_i128(n) {
                Some(i) => out.push_str(&i.to_string()),
                None => {
                    let x = as_f64(n);
                    // 2^63: below it an integral float converts to i64 exactly.
                    if x.fract() == 0.0 && x.abs() < 9.223_372_036_854_776e18 {
                        out.push_str(&(x as i64).to_string());
                    } else {
                        out.push_str(&format!("{x:e}"));
                    }
                }
            }
        }
        Value::String(s) => {
            out.push('s');
            out.push_str(&Value::String(s.clone()).to_string());
        }
        Value::Array(items) => {
            out.push('[');
            for item in items {
                write_canonical(item, out);
                out.push(',');
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<_> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (k, v) in members {
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(v, out);
                out.push(',');
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn check(values: Value, expected: &[(AggrMethod, Value)]) {
        let values = values.as_array().unwrap();
        for (method, want) in expected {
            assert_eq!(
                &aggregate(values, *method),
                want,
                "{} of {values:?}",
                method.name()
            );
        }
    }

    fn approx(got: &Value, want: f64) {
        let got = got.as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{got} != {want}");
    }

    #[test]
    fn aggregates_integers() {
        use AggrMethod::*;
        // Numbers 1, 2, 3, 4, 4: sum 14, mean 2.8, squares 1 + 4 + 9 + 16 + 16 = 46;
        // squared deviations 3.24 + 0.64 + 0.04 + 1.44 + 1.44 = 6.8, / (5 - 1) = 1.7.
        let values = json!([1, 2, "x", 3, true, null, 4, 4]);
        check(
            values.clone(),
            &[
                (TotalCount, json!(8)),
                (DistinctCount, json!(7)),
                (Sum, json!(14)),
                (Avg, json!(2.8)),
                (Min, json!(1)),
                (Max, json!(4)),
                (SumSq, json!(46)),
            ],
        );
        approx(
            &aggregate(values.as_array().unwrap(), StdDev),
            1.7f64.sqrt(),
        );
    }

    #[test]
    fn aggregates_floats() {
        use AggrMethod::*;
        // 1.5 + 2.5 + -1 = 3; squares 2.25 + 6.25 + 1 = 9.5; mean 1;
        // deviations 0.25 + 2.25 + 4 = 6.5, / 2 = 3.25.
        let values = json!([1.5, 2.5, -1]);
        check(
            values.clone(),
            &[
                (TotalCount, json!(3)),
                (DistinctCount, json!(3)),
                (Sum, json!(3.0)),
                (Avg, json!(1.0)),
                (Min, json!(-1)),
                (Max, json!(2.5)),
                (SumSq, json!(9.5)),
            ],
        );
        approx(
            &aggregate(values.as_array().unwrap(), StdDev),
            3.25f64.sqrt(),
        );
        // Two equal numbers: no deviation.
        check(
            json!([2, 2.0]),
            &[(StdDev, json!(0.0)), (DistinctCount, json!(1))],
        );
    }

    #[test]
    fn without_numbers_only_counts_have_a_value() {
        use AggrMethod::*;
        for values in [json!([]), json!(["a", "b", "a", false, {"x": 1}])] {
            for method in [Sum, Avg, Min, Max, StdDev, SumSq] {
                assert_eq!(aggregate(values.as_array().unwrap(), method), Value::Null);
            }
        }
        check(
            json!([]),
            &[(TotalCount, json!(0)), (DistinctCount, json!(0))],
        );
        check(
            json!(["a", "b", "a", false, {"x": 1}]),
            &[(TotalCount, json!(5)), (DistinctCount, json!(4))],
        );
        // One number has no sample deviation.
        check(json!([5, "x"]), &[(StdDev, Value::Null), (Avg, json!(5.0))]);
    }

    #[test]
    fn distinct_values_by_json_equality() {
        check(
            json!([
                1, 1.0, 1.5, "1", true,
                {"a": 1, "b": [1, 2]}, {"b": [1, 2.0], "a": 1},
                [1, 2], [2, 1], null, null
            ]),
            // 1 (and 1.0), 1.5, "1", true, the object, [1, 2], [2, 1], null.
            &[(AggrMethod::DistinctCount, json!(8))],
        );
    }

    #[test]
    fn large_integers_stay_exact_until_they_overflow() {
        let big = i64::MAX;
        check(
            json!([big, 1]),
            &[
                (AggrMethod::Sum, json!(9_223_372_036_854_775_808u64)),
                (AggrMethod::Max, json!(big)),
            ],
        );
        // Past 64 bits the sum becomes a float rather than wrapping.
        check(
            json!([u64::MAX, u64::MAX]),
            &[(AggrMethod::Sum, json!(2.0 * u64::MAX as f64))],
        );
        // A float overflow has no JSON number: null.
        check(json!([1e308, 1e308]), &[(AggrMethod::Sum, Value::Null)]);
    }

    proptest! {
        #[test]
        fn agrees_with_a_naive_computation(xs in prop::collection::vec(-1_000_000i64..1_000_000, 0..50)) {
            let values: Vec<Value> = xs.iter().map(|x| json!(x)).collect();
            let n = xs.len();
            prop_assert_eq!(aggregate(&values, AggrMethod::TotalCount), json!(n));
            let distinct: HashSet<i64> = xs.iter().copied().collect();
            prop_assert_eq!(aggregate(&values, AggrMethod::DistinctCount), json!(distinct.len()));
            if n == 0 {
                prop_assert_eq!(aggregate(&values, AggrMethod::Sum), Value::Null);
                return Ok(());
            }
            let sum: i64 = xs.iter().sum();
            prop_assert_eq!(aggregate(&values, AggrMethod::Sum), json!(sum));
            prop_assert_eq!(aggregate(&values, AggrMethod::SumSq), json!(xs.iter().map(|x| x * x).sum::<i64>()));
            prop_assert_eq!(aggregate(&values, AggrMethod::Min), json!(xs.iter().min()));
            prop_assert_eq!(aggregate(&values, AggrMethod::Max), json!(xs.iter().max()));
            let mean = sum as f64 / n as f64;
            let avg = aggregate(&values, AggrMethod::Avg).as_f64().unwrap();
            prop_assert!((avg - mean).abs() <= 1e-9 * mean.abs().max(1.0));
            let sd = aggregate(&values, AggrMethod::StdDev);
            if n < 2 {
                prop_assert_eq!(sd, Value::Null);
            } else {
                let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                let sd = sd.as_f64().unwrap();
                prop_assert!((sd - var.sqrt()).abs() <= 1e-6 * var.sqrt().max(1.0));
            }
        }

        #[test]
        fn never_panics_on_mixed_values(xs in prop::collection::vec(
            prop_oneof![
                any::<f64>().prop_map(|x| Number::from_f64(x).map_or(Value::Null, Value::Number)),
                any::<i64>().prop_map(|x| json!(x)),
                any::<u64>().prop_map(|x| json!(x)),
                any::<bool>().prop_map(Value::Bool),
                ".{0,4}".prop_map(Value::String),
            ], 0..30)) {
            for m in AggrMethod::ALL {
                let v = aggregate(&xs, m);
                prop_assert!(v.is_null() || v.is_number(), "{:?}", v);
            }
        }
    }
}
