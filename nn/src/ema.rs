//! An exponential moving average of a model's weights, for sampling and previews.
//!
//! After each optimizer step, θ̄ ← d·θ̄ + (1 − d)·θ. The average smooths out the last steps'
//! noise (the optimizer's steps never settle with a constant learning rate), so generators and
//! face swaps draw from θ̄ rather than from the last θ (Karras et al. 2018; faceswap and
//! StyleGAN do the same). Early on, when θ̄ would still remember the random initialisation, the
//! decay is warmed up as d_n = min(d, (1 + n)/(10 + n)) for the update after n others, as TensorFlow's
//! `ExponentialMovingAverage` with `num_updates` does.
//!
//! ```
//! use ferrograd_engine::{DType, Tensor};
//! use ferrograd_nn::ema::WeightAverage;
//! # fn main() -> ferrograd_engine::Result<()> {
//! let w = Tensor::from_f64s(&[1.0, 2.0], &[2], DType::F64)?;
//! let params = vec![("w".to_string(), w.clone())];
//! let mut average = WeightAverage::new(&params, 0.9)?;
//! w.assign(&Tensor::from_f64s(&[3.0, 2.0], &[2], DType::F64)?)?; // an optimizer step
//! average.update(&params)?; // d_0 = min(0.9, 1/10) = 0.1: θ̄ = 0.1·1 + 0.9·3 for w[0]
//! let averaged = average.with_average(&params, || Ok(w.to_vec_f64()))?;
//! assert!((averaged[0] - 2.8).abs() < 1e-12);
//! assert_eq!(w.to_vec_f64(), vec![3.0, 2.0]); // the trained weights are back
//! # Ok(()) }
//! ```

use ferrograd_engine::{no_grad, Error, Result, Tensor};

/// The moving average of a list of named parameters (see the module's equation).
pub struct WeightAverage {
    decay: f64,
    updates: u64,
    /// θ̄, one tensor per parameter, in the parameters' order and with their names.
    average: Vec<(String, Tensor)>,
}

impl WeightAverage {
    /// Starts the average at the parameters' current values. `decay` must lie in [0, 1).
    pub fn new(params: &[(String, Tensor)], decay: f64) -> Result<WeightAverage> {
        if !(0.0..1.0).contains(&decay) {
            return Err(Error::argument(
                "WeightAverage::new",
                format!("decay must lie in [0, 1), not {decay}"),
            ));
        }
        let average = no_grad(|| {
            params
                .iter()
                .map(|(name, p)| Ok((name.clone(), copy(p)?)))
                .collect::<Result<Vec<_>>>()
        })?;
        Ok(WeightAverage {
            decay,
            updates: 0,
            average,
        })
    }

    /// Updates taken so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// θ̄ ← d_n·θ̄ + (1 − d_n)·θ with the warmed-up decay d_n = min(d, (1 + n)/(10 + n)).
    /// `params` must be the list the average was made from (same names, order and shapes).
    pub fn update(&mut self, params: &[(String, Tensor)]) -> Result<()> {
        self.check(params, "WeightAverage::update")?;
        let n = self.updates as f64;
        let d = self.decay.min((1.0 + n) / (10.0 + n));
        no_grad(|| {
            for ((_, average), (_, p)) in self.average.iter().zip(params) {
                let p = p.to(average.device())?;
                average.assign(&average.mul_scalar(d)?.add(&p.mul_scalar(1.0 - d)?)?)?;
            }
            Ok::<(), Error>(())
        })?;
        self.updates += 1;
        Ok(())
    }

    /// Runs `f` with the averaged values in `params`, then puts the trained values back (also
    /// when `f` fails), so that inference code draws from θ̄ without a second copy of the model.
    pub fn with_average<R>(
        &self,
        params: &[(String, Tensor)],
        f: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        self.check(params, "WeightAverage::with_average")?;
        // `assign` replaces a tensor's storage rather than writing into it, so a detached
        // handle keeps the trained values without copying them.
        let trained: Vec<Tensor> = params.iter().map(|(_, p)| p.detach()).collect();
        for ((_, p), (_, average)) in params.iter().zip(&self.average) {
            p.assign(&average.to(p.device())?)?;
        }
        let result = f();
        for ((_, p), value) in params.iter().zip(&trained) {
            p.assign(value)?;
        }
        result
    }

    /// θ̄ by name, each name with `prefix` in front, and the update count, for a checkpoint.
    pub fn state(&self, prefix: &str) -> (Vec<(String, Tensor)>, u64) {
        let tensors = self
            .average
            .iter()
            .map(|(name, t)| (format!("{prefix}{name}"), t.clone()))
            .collect();
        (tensors, self.updates)
    }

    /// Restores [`WeightAverage::state`]: every tensor by its name with `prefix`, with the
    /// parameter's shape.
    pub fn load_state(
        &mut self,
        prefix: &str,
        tensors: &std::collections::BTreeMap<String, Tensor>,
        updates: u64,
    ) -> Result<()> {
        for (name, average) in &self.average {
            let key = format!("{prefix}{name}");
            let Some(saved) = tensors.get(&key) else {
                return Err(Error::argument(
                    "WeightAverage::load_state",
                    format!("no tensor '{key}'"),
                ));
            };
            average.assign(&saved.to(average.device())?.to_dtype(average.dtype())?)?;
        }
        self.updates = updates;
        Ok(())
    }

    fn check(&self, params: &[(String, Tensor)], op: &'static str) -> Result<()> {
        let same = params.len() == self.average.len()
            && params
                .iter()
                .zip(&self.average)
                .all(|((n, p), (m, a))| n == m && p.shape() == a.shape());
        if !same {
            return Err(Error::argument(
                op,
                "the parameters are not the list the average was made from (names, order or \
                 shapes differ)",
            ));
        }
        Ok(())
    }
}

/// A copy with storage of its own: an optimizer that writes its parameters in place must not
/// move the average.
fn copy(t: &Tensor) -> Result<Tensor> {
    t.detach().mul_scalar(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Adam, Optimizer};
    use ferrograd_engine::DType;

    fn named(values: &[f64]) -> Vec<(String, Tensor)> {
        vec![(
            "w".to_string(),
            Tensor::from_f64s(values, &[values.len()], DType::F64).unwrap(),
        )]
    }

    #[test]
    fn the_average_follows_the_warmed_up_recursion() {
        let params = named(&[0.0]);
        let mut average = WeightAverage::new(&params, 0.5).unwrap();
        let mut want = 0.0;
        for step in 0..6u64 {
            let value = (step + 1) as f64 * 10.0;
            params[0].1.assign(&named(&[value])[0].1).unwrap();
            average.update(&params).unwrap();
            let n = step as f64;
            let d = 0.5f64.min((1.0 + n) / (10.0 + n));
            want = d * want + (1.0 - d) * value;
        }
        assert_eq!(average.updates(), 6);
        let got = average
            .with_average(&params, || Ok(params[0].1.to_vec_f64()[0]))
            .unwrap();
        assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    }

    #[test]
    fn trained_weights_come_back_even_when_the_closure_fails_and_an_optimizer_does_not_move_the_average(
    ) {
        let params = named(&[1.0, -1.0]);
        let average = WeightAverage::new(&params, 0.99).unwrap();
        // An Adam step changes the weights; the average (not updated) stays where it began.
        let w = params[0].1.clone();
        w.set_requires_grad(true).unwrap();
        w.mul(&w).unwrap().sum_all().unwrap().backward().unwrap();
        Adam::new(params.clone(), 0.1).step().unwrap();
        let stepped = w.to_vec_f64();
        assert_ne!(stepped, vec![1.0, -1.0]);
        let failed: Result<()> = average.with_average(&params, || {
            assert_eq!(w.to_vec_f64(), vec![1.0, -1.0]);
            Err(Error::argument("test", "fails inside"))
        });
        assert!(failed.is_err());
        assert_eq!(w.to_vec_f64(), stepped);
    }

    #[test]
    fn other_parameter_lists_and_decays_are_refused_and_the_state_round_trips() {
        let params = named(&[1.0, 2.0]);
        assert!(WeightAverage::new(&params, 1.0).is_err());
        assert!(WeightAverage::new(&params, -0.1).is_err());
        let mut average = WeightAverage::new(&params, 0.9).unwrap();
        assert!(average.update(&named(&[1.0, 2.0, 3.0])).is_err());
        params[0].1.assign(&named(&[5.0, 6.0])[0].1).unwrap();
        average.update(&params).unwrap();
        let (tensors, updates) = average.state("ema.");
        assert_eq!(tensors[0].0, "ema.w");
        let map = tensors.into_iter().collect();
        let mut restored = WeightAverage::new(&named(&[0.0, 0.0]), 0.9).unwrap();
        restored.load_state("ema.", &map, updates).unwrap();
        let probe = named(&[0.0, 0.0]);
        let read = |a: &WeightAverage| {
            a.with_average(&probe, || Ok(probe[0].1.to_vec_f64()))
                .unwrap()
        };
        assert_eq!(read(&restored), read(&average));
        assert_eq!(restored.updates(), 1);
        assert!(restored
            .load_state("other.", &map, 1)
            .unwrap_err()
            .to_string()
            .contains("other.w"));
    }
}
