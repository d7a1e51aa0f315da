//! Checkpoints: named tensors in safetensors files, written atomically.
