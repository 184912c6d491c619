//! Model weights ⇄ bytes: a magic and format version, then safetensors (a format that is safe to
//! parse: no code, bounds-checked). Loading checks every tensor's name, dtype and shape against
//! the network the stored config describes.

use crate::error::{Error, Result};
use crate::model::{ModelConfig, StanNet};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

pub const MAGIC: &[u8; 8] = b"STANWTS\0";
pub const FORMAT_VERSION: u32 = 1;

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
