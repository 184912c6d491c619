//! A trained model as stored: the fitted codecs and the network's shape as JSON, the weights as
//! bytes (a magic and weights version, then safetensors: safe to parse, no code,
//! bounds-checked). The three are versioned together by [`MODEL_FORMAT`]; each format stan still
//! reads has one loader in [`decode`], so the current structs carry no defaults for old models.
//! Loading the weights checks every tensor's name, dtype and shape against the network the
//! config describes.

use crate::codec::TableCodec;
use crate::error::{Error, Result};
use crate::model::{ModelConfig, StanNet};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

pub const MAGIC: &[u8; 8] = b"STANWTS\0";
pub const FORMAT_VERSION: u32 = 1;

/// The format this stan writes: 2 since stan 0.2.0 (every field written). 1 is stan 0.1.0's,
/// whose JSON may lack fields added during 0.1.0.
pub const MODEL_FORMAT: i32 = 2;
/// The oldest format [`decode`] reads.
pub const OLDEST_MODEL_FORMAT: i32 = 1;

/// The codecs and network description as stored with [`MODEL_FORMAT`].
pub fn encode(codec: &TableCodec, config: &ModelConfig) -> Result<(Value, Value)> {
    let codecs = serde_json::to_value(codec)
        .map_err(|e| Error::CorruptModel(format!("the codecs cannot be stored: {e}")))?;
    let config = serde_json::to_value(config)
        .map_err(|e| Error::CorruptModel(format!("the network cannot be stored: {e}")))?;
    Ok((codecs, config))
}

/// Reads the codecs and network description a model of `format` stored.
pub fn decode(format: i32, codecs: Value, config: Value) -> Result<(TableCodec, ModelConfig)> {
    let (codecs, config) = match format {
        1 => (format_1::codecs(codecs), format_1::config(config)),
        MODEL_FORMAT => (codecs, config),
        other => {
            return Err(Error::CorruptModel(format!(
                "stored in model format {other}; this stan reads formats {OLDEST_MODEL_FORMAT} to {MODEL_FORMAT}: retrain the model, or update stan if it is newer"
            )))
        }
    };
    let codec = serde_json::from_value(codecs)
        .map_err(|e| Error::CorruptModel(format!("unreadable codecs: {e}")))?;
    let config = serde_json::from_value(config)
        .map_err(|e| Error::CorruptModel(format!("unreadable network description: {e}")))?;
    Ok((codec, config))
}

/// stan 0.1.0's models: fields added during 0.1.0 are missing from older ones, and empty lists
/// and absent options were left out. Each gets the value that stan read it as then.
mod format_1 {
    use super::*;
    use crate::codec::time::Clock;

    fn fill(object: &mut Value, defaults: &[(&str, Value)]) {
        if let Some(map) = object.as_object_mut() {
            for (key, value) in defaults {
                map.entry(key.to_string()).or_insert_with(|| value.clone());
            }
        }
    }

    pub fn codecs(mut codecs: Value) -> Value {
        fill(
            &mut codecs,
            &[
                ("ratios", json!([])),
                ("pairs", json!([])),
                ("stream_addresses", json!([])),
                ("stream_max_gaps", json!([])),
                ("value_ranges", json!([])),
            ],
        );
        for column in codecs["columns"].as_array_mut().into_iter().flatten() {
            let defaults: Vec<(&str, Value)> = match column["codec"].as_str() {
                // No longest gap was kept: any gap (JSON holds no infinity; f64::MAX bounds
                // nothing a float gap can reach).
                Some("gap") => vec![
                    ("max", json!(f64::MAX)),
                    (
                        "clock",
                        json!({"period": Clock::DAILY.period, "origin": Clock::DAILY.origin}),
                    ),
                ],
                Some("ipv4") => vec![("own", json!(false))],
                Some("port") => vec![("frequent", json!([]))],
                Some("continuous") => vec![("since_order", json!(false))],
                _ => vec![],
            };
            fill(column, &defaults);
        }
        for pair in codecs["pairs"].as_array_mut().into_iter().flatten() {
            fill(pair, &[("allowed_wide", json!([]))]);
        }
        codecs
    }

    pub fn config(mut config: Value) -> Value {
        fill(
            &mut config,
            &[
                ("cnn_per_attribute", json!(false)),
                ("streams", json!(0)),
                ("stream_dim", json!(0)),
                ("stream_rate", json!(false)),
            ],
        );
        for attribute in config["attributes"].as_array_mut().into_iter().flatten() {
            fill(attribute, &[("own_value", json!(false))]);
        }
        config
    }
}

pub fn save(net: &StanNet) -> Result<Vec<u8>> {
    let mut vars: Vec<(String, Tensor)> = net.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buffers = Vec::with_capacity(vars.len());
    for (name, t) in &vars {
        let t = t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous();
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        let data: Vec<f32> = Vec::<f32>::try_from(t.flatten(0, -1))?;
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        buffers.push((name.clone(), shape, bytes));
    }
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("consistent view"),
            )
        })
        .collect();
    let body =
        safetensors::serialize(views, None).map_err(|e| Error::CorruptModel(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 12);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Builds the network `config` describes and fills it from `bytes`.
pub fn load(config: ModelConfig, bytes: &[u8], device: Device) -> Result<StanNet> {
    if bytes.len() < 12 || &bytes[..8] != MAGIC {
        return Err(Error::CorruptModel(
            "the weights do not start with stan's header".into(),
        ));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(Error::CorruptModel(format!(
            "weights format version {version}; this stan reads version {FORMAT_VERSION}: retrain the model"
        )));
    }
    let st = safetensors::SafeTensors::deserialize(&bytes[12..])
        .map_err(|e| Error::CorruptModel(format!("weights: {e}")))?;
    let net = StanNet::new(config, device);
    let vars: HashMap<String, Tensor> = net.vs.variables();
    if st.len() != vars.len() {
        return Err(Error::CorruptModel(format!(
            "{} weight tensors stored, the model needs {}",
            st.len(),
            vars.len()
        )));
    }
    tch::no_grad(|| -> Result<()> {
        for (name, var) in &vars {
            let view = st
                .tensor(name)
                .map_err(|_| Error::CorruptModel(format!("weight \"{name}\" is missing")))?;
            let want: Vec<usize> = var.size().iter().map(|&d| d as usize).collect();
            if view.dtype() != Dtype::F32 || view.shape() != want.as_slice() {
                return Err(Error::CorruptModel(format!(
                    "weight \"{name}\" is {:?} {:?}, expected F32 {:?}",
                    view.dtype(),
                    view.shape(),
                    want
                )));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                return Err(Error::CorruptModel(format!(
                    "weight \"{name}\" holds a non-finite value"
                )));
            }
            let shape: Vec<i64> = want.iter().map(|&d| d as i64).collect();
            var.shallow_clone().f_copy_(
                &Tensor::from_slice(&values)
                    .view(shape.as_slice())
                    .to(device),
            )?;
        }
        Ok(())
    })?;
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AttributeSpec, HeadSpec, Mask};
    use rand::{Rng, SeedableRng};

    fn small_config() -> ModelConfig {
        ModelConfig {
            attributes: vec![
                AttributeSpec {
                    name: "te".into(),
                    heads: vec![HeadSpec::Mdn],
                    extra_inputs: 2,
                    own_value: false,
                },
                AttributeSpec {
                    name: "pr".into(),
                    heads: vec![HeadSpec::Softmax {
                        classes: 3,
                        banned: vec![],
                    }],
                    extra_inputs: 0,
                    own_value: false,
                },
            ],
            window: 3,
            conv_layers: 1,
            conv_channels: 2,
            hidden: 4,
            head_hidden: 4,
            mixtures: 2,
            mask: Mask::B,
            cnn_per_attribute: false,
            streams: 0,
            stream_dim: 0,
            stream_rate: false,
        }
    }

    #[test]
    fn saved_weights_load_back_identically() {
        let net = StanNet::new(small_config(), Device::Cpu);
        let bytes = save(&net).unwrap();
        let loaded = load(small_config(), &bytes, Device::Cpu).unwrap();
        assert_eq!(save(&loaded).unwrap(), bytes);
    }

    /// 10,000 mutated blobs: every one loads cleanly or fails with an error, never a panic.
    #[test]
    fn mutated_weights_never_panic() {
        let good = save(&StanNet::new(small_config(), Device::Cpu)).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
        let (mut loaded, mut refused) = (0, 0);
        for case in 0..10_000 {
            let mut bytes = good.clone();
            match case % 5 {
                0 => {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.random_range(0..8);
                }
                1 => {
                    for _ in 0..rng.random_range(1..16) {
                        let i = rng.random_range(0..bytes.len());
                        bytes[i] = rng.random();
                    }
                }
                2 => bytes.truncate(rng.random_range(0..bytes.len())),
                3 => {
                    let i = rng.random_range(0..bytes.len());
                    let extra: Vec<u8> =
                        (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
                    bytes.splice(i..i, extra);
                }
                _ => {
                    // The safetensors header length and its JSON, where parsers are most fragile.
                    let i = rng.random_range(12..(12 + 8 + 64).min(bytes.len()));
                    bytes[i] = rng.random();
                }
            }
            let outcome =
                std::panic::catch_unwind(|| load(small_config(), &bytes, Device::Cpu).is_ok());
            match outcome {
                Ok(true) => loaded += 1,
                Ok(false) => refused += 1,
                Err(_) => panic!("case {case}: loading mutated weights panicked"),
            }
        }
        eprintln!("mutated weights: {loaded} loaded, {refused} refused, 0 panics");
        assert_eq!(loaded + refused, 10_000);
        assert!(
            refused > 3_000,
            "only {refused} of 10,000 mutations were refused"
        );
    }
}
