//! The GPU path: WGSL compute shaders run through `wgpu`, on whatever adapter wgpu reaches
//! (Vulkan, Metal, DX12; Mesa's lavapipe in CI).
//!
//! Everything here works on [`GpuBuffer`]s of 32-bit words (`f32` values or `u32` indices)
//! that stay on the device. Bytes cross to the host only through [`Gpu::read_f32`] /
//! [`Gpu::read_u32`], and each crossing is counted ([`readback_count`]) so a test can prove a
//! training step reads back nothing but its loss.
//!
//! Three pieces of plumbing keep a training loop from allocating or stalling per op:
//! - a **buffer pool** keyed by size: a dropped [`GpuBuffer`] returns its `wgpu::Buffer` to the
//!   pool, and the next request of that size takes it back ([`buffer_allocations`] counts the
//!   misses);
//! - one **pending command encoder**: dispatches are recorded into it and submitted together
//!   when values are read back, data is uploaded, or enough work has piled up;
//! - a **parameter ring**: each dispatch's small integer parameters (shapes, strides, op codes)
//!   are written at a fresh offset of one storage buffer, reset on each submit.
//!
//! Shaders bind their parameters at `@binding(0)` (`array<u32>`, floats passed by
//! `bitcast`) and their buffers at `@binding(1)`, `@binding(2)`, … in the order given to
//! [`Gpu::dispatch`].

pub mod conv;
pub mod elementwise;
pub mod index;
pub mod layout;
pub mod matmul;
pub mod optim;
pub mod params;
pub mod reduce;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Words in the parameter ring (256 KiB).
const RING_WORDS: u64 = 1 << 16;
/// Dispatches recorded before the encoder is submitted even if nobody waits for the results.
const MAX_PENDING_DISPATCHES: usize = 512;
/// Invocations per workgroup of the one-dimensional kernels.
pub const WORKGROUP: u32 = 256;

static READBACKS: AtomicU64 = AtomicU64::new(0);
static UPLOADS: AtomicU64 = AtomicU64::new(0);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Device-to-host copies made so far by this process (each `read_*` call counts one).
pub fn readback_count() -> u64 {
    READBACKS.load(Ordering::Relaxed)
}

/// Host-to-device copies made so far by this process.
pub fn upload_count() -> u64 {
    UPLOADS.load(Ordering::Relaxed)
}

/// `wgpu::Buffer`s created so far (pool misses); constant over a steady training loop.
pub fn buffer_allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// A compute shader, compiled once per process on first use. Its source is the generated
/// prelude ([`params::prelude`]: the shared constants and the parameter structs in `structs`)
/// followed by `files`.
pub struct Shader {
    /// Its key in the module and pipeline caches, and its label in wgpu's messages; unique
    /// per shader.
    pub name: &'static str,
    /// The WGSL declarations of the parameter blocks it reads (`UnaryParams::WGSL`, …).
    pub structs: &'static [&'static str],
    /// Its WGSL files, in order.
    pub files: &'static [&'static str],
}

impl Shader {
    /// The whole WGSL source.
    pub fn source(&self) -> String {
        params::prelude(self.structs) + &self.files.concat()
    }
}

/// The adapter, its device and queue, and the caches that make dispatches cheap.
pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Alignment of storage-buffer binding offsets, in bytes.
    offset_alignment: u64,
    max_binding_bytes: u64,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str), wgpu::ComputePipeline>>,
    pool: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    staging: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    pending: Mutex<Pending>,
    ring: wgpu::Buffer,
}

struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    dispatches: usize,
    /// Next free byte of the parameter ring.
    ring_offset: u64,
}

/// A device buffer of `len` 32-bit words. Dropping it returns the memory to the pool.
pub struct GpuBuffer {
    buffer: Option<wgpu::Buffer>,
    len: usize,
}

impl GpuBuffer {
    /// Number of 32-bit words.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether it holds no words.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    fn raw(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("a live buffer")
    }
}

impl std::fmt::Debug for GpuBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuBuffer({} words)", self.len)
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let (Some(buffer), Ok(gpu)) = (self.buffer.take(), context()) {
            gpu.pool
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(buffer.size())
                .or_default()
                .push(buffer);
        }
    }
}

/// Bytes of a buffer of `len` words: never zero, since wgpu cannot bind an empty buffer.
fn byte_size(len: usize) -> u64 {
    (len.max(1) * 4) as u64
}

static CONTEXT: OnceLock<Result<Gpu, String>> = OnceLock::new();

/// The process's GPU, opened on first use; the error says why there is none.
///
/// The adapter is the highest-performance one among the backends in `WGPU_BACKEND` (all of
/// them when unset).
pub fn context() -> Result<&'static Gpu, String> {
    CONTEXT.get_or_init(open).as_ref().map_err(Clone::clone)
}

fn open() -> Result<Gpu, String> {
    let descriptor = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    let backends = descriptor.backends;
    let instance = wgpu::Instance::new(descriptor);
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        apply_limit_buckets: false,
    }))
    .map_err(|e| {
        format!(
            "no GPU adapter found among the backends {backends:?} ({e}); on Linux without a GPU, \
             `apt-get install mesa-vulkan-drivers libvulkan1` gives a software one (lavapipe)"
        )
    })?;
    let limits = adapter.limits();
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("ferrograd"),
        required_features: wgpu::Features::empty(),
        required_limits: limits.clone(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| format!("the GPU adapter would not open a device: {e}"))?;
    let ring = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("parameter ring"),
        size: RING_WORDS * 4,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    Ok(Gpu {
        info: adapter.get_info(),
        offset_alignment: limits.min_storage_buffer_offset_alignment as u64,
        max_binding_bytes: limits.max_storage_buffer_binding_size as u64,
        device,
        queue,
        modules: Mutex::default(),
        pipelines: Mutex::default(),
        pool: Mutex::default(),
        staging: Mutex::default(),
        pending: Mutex::new(Pending {
            encoder: None,
            dispatches: 0,
            ring_offset: 0,
        }),
        ring,
    })
}

/// Workgroup counts covering `invocations` one-dimensional invocations of [`WORKGROUP`] each,
/// folded into a second dimension past wgpu's 65,535 groups per dimension. Shaders recover
/// the flat index as `gid.x + gid.y * nwg.x * WORKGROUP`.
pub fn grid_1d(invocations: usize) -> [u32; 3] {
    let groups = invocations.div_ceil(WORKGROUP as usize).max(1);
    let x = groups.min(65_535);
    [x as u32, groups.div_ceil(x) as u32, 1]
}

impl Gpu {
    /// The adapter's name and backend, e.g. "NVIDIA H100 (Vulkan)".
    pub fn adapter_name(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// The most 32-bit words one buffer may hold: the adapter's largest storage binding.
    pub fn max_buffer_words(&self) -> usize {
        (self.max_binding_bytes / 4) as usize
    }

    /// Whether the adapter is a CPU in disguise (lavapipe, WARP).
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// A buffer of `len` words with undefined contents, from the pool when it has one.
    pub fn alloc(&self, len: usize) -> GpuBuffer {
        let size = byte_size(len);
        assert!(
            size <= self.max_binding_bytes,
            "a buffer of {len} values exceeds the adapter's largest binding ({} bytes)",
            self.max_binding_bytes
        );
        let reused = self
            .pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&size)
            .and_then(Vec::pop);
        let buffer = reused.unwrap_or_else(|| {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        GpuBuffer {
            buffer: Some(buffer),
            len,
        }
    }

    /// A buffer of `len` zero words (cleared in order with the recorded work).
    pub fn zeros(&self, len: usize) -> GpuBuffer {
        let out = self.alloc(len);
        self.with_encoder(|enc| enc.clear_buffer(out.raw(), 0, None));
        out
    }

    fn upload_words(&self, words: &[u32]) -> GpuBuffer {
        let out = self.alloc(words.len());
        if !words.is_empty() {
            // A pooled buffer may still be read by recorded, unsubmitted work; writes through
            // the queue land before that work runs, so submit it first.
            self.flush();
            self.queue
                .write_buffer(out.raw(), 0, bytemuck::cast_slice(words));
            UPLOADS.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Copies `values` to a new device buffer.
    pub fn upload_f32(&self, values: &[f32]) -> GpuBuffer {
        self.upload_words(bytemuck::cast_slice(values))
    }

    /// Copies indices to a new device buffer; each must fit in 32 bits.
    pub fn upload_u32(&self, values: &[u32]) -> GpuBuffer {
        self.upload_words(values)
    }

    fn read_words(&self, buffer: &GpuBuffer) -> Vec<u32> {
        if buffer.len == 0 {
            return Vec::new();
        }
        let size = byte_size(buffer.len);
        let staging = self
            .staging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&size)
            .and_then(Vec::pop)
            .unwrap_or_else(|| {
                ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
                self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("read-back"),
                    size,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            });
        self.with_encoder(|enc| enc.copy_buffer_to_buffer(buffer.raw(), 0, &staging, 0, size));
        self.flush();
        let slice = staging.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("the GPU finished its work");
        rx.recv()
            .expect("the map callback ran")
            .expect("a read-back buffer maps");
        let words = {
            let view = slice.get_mapped_range().expect("a mapped read-back buffer");
            bytemuck::cast_slice::<u8, u32>(&view)[..buffer.len].to_vec()
        };
        staging.unmap();
        self.staging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(size)
            .or_default()
            .push(staging);
        READBACKS.fetch_add(1, Ordering::Relaxed);
        words
    }

    /// Copies a buffer's values to the host (waits for the work that produces them).
    pub fn read_f32(&self, buffer: &GpuBuffer) -> Vec<f32> {
        bytemuck::cast_vec(self.read_words(buffer))
    }

    /// Copies a buffer of indices to the host.
    pub fn read_u32(&self, buffer: &GpuBuffer) -> Vec<u32> {
        self.read_words(buffer)
    }

    /// A device-side copy of a buffer.
    pub fn copy(&self, buffer: &GpuBuffer) -> GpuBuffer {
        let out = self.alloc(buffer.len);
        if buffer.len > 0 {
            self.with_encoder(|enc| {
                enc.copy_buffer_to_buffer(buffer.raw(), 0, out.raw(), 0, byte_size(buffer.len))
            });
        }
        out
    }

    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let encoder = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        f(encoder)
    }

    /// Submits the recorded work (without waiting for it).
    pub fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        Self::submit(&self.queue, &mut pending);
    }

    fn submit(queue: &wgpu::Queue, pending: &mut Pending) {
        if let Some(encoder) = pending.encoder.take() {
            queue.submit([encoder.finish()]);
        }
        pending.dispatches = 0;
        pending.ring_offset = 0;
    }

    fn pipeline(&self, shader: &Shader, entry: &'static str) -> wgpu::ComputePipeline {
        let key = (shader.name, entry);
        if let Some(p) = self
            .pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return p.clone();
        }
        let module = self
            .modules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(shader.name)
            .or_insert_with(|| {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name),
                        source: wgpu::ShaderSource::Wgsl(shader.source().into()),
                    })
            })
            .clone();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
        self.pipelines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, pipeline.clone());
        pipeline
    }

    /// A shader from outside this crate (a user's custom op), checked: its source compiled and
    /// `entry` made into a pipeline inside an error scope, so a mistake is an `Err` with the
    /// compiler's message instead of a panic. Compiled once per (name, source); the returned
    /// shader lives for the process.
    pub fn custom_shader(
        &self,
        name: &'static str,
        source: &str,
        entry: &'static str,
    ) -> Result<&'static Shader, String> {
        static CUSTOM: OnceLock<Mutex<HashMap<(String, String), &'static Shader>>> =
            OnceLock::new();
        let key = (name.to_string(), source.to_string());
        let cache = CUSTOM.get_or_init(Mutex::default);
        if let Some(&shader) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(shader);
        }
        // Each distinct source is leaked once: shaders live as long as the process anyway.
        let files: &'static [&'static str] =
            Box::leak(Box::new([&*Box::leak(source.to_string().into_boxed_str())]));
        // A name of its own per source, since modules are cached by name.
        let unique: &'static str = Box::leak(
            format!(
                "{name} (custom #{})",
                cache.lock().unwrap_or_else(|e| e.into_inner()).len()
            )
            .into_boxed_str(),
        );
        let shader: &'static Shader = Box::leak(Box::new(Shader {
            name: unique,
            structs: &[],
            files,
        }));
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let _ = self.pipeline(shader, entry);
        if let Some(error) = pollster::block_on(scope.pop()) {
            // Forget the broken module so a corrected source under the same name compiles.
            self.modules
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(unique);
            self.pipelines
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(unique, entry));
            return Err(format!(
                "the WGSL of '{name}' (entry '{entry}') does not compile: {error}"
            ));
        }
        cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, shader);
        Ok(shader)
    }

    /// Records one dispatch of `shader`'s `entry` over `groups` workgroups, with `params` at
    /// binding 0 and `buffers` at bindings 1, 2, ….
    pub fn dispatch(
        &self,
        shader: &Shader,
        entry: &'static str,
        params: &[u32],
        buffers: &[&GpuBuffer],
        groups: [u32; 3],
    ) {
        if groups.contains(&0) {
            return;
        }
        let pipeline = self.pipeline(shader, entry);
        let param_words = params.len().max(1);
        let param_bytes = (param_words * 4) as u64;
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.ring_offset + param_bytes > RING_WORDS * 4
            || pending.dispatches >= MAX_PENDING_DISPATCHES
        {
            Self::submit(&self.queue, &mut pending);
        }
        let offset = pending.ring_offset;
        let mut words = params.to_vec();
        words.resize(param_words, 0);
        self.queue
            .write_buffer(&self.ring, offset, bytemuck::cast_slice(&words));
        pending.ring_offset = (offset + param_bytes).next_multiple_of(self.offset_alignment);
        pending.dispatches += 1;

        let layout = pipeline.get_bind_group_layout(0);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.ring,
                offset,
                size: NonZeroU64::new(param_bytes),
            }),
        }];
        for (i, b) in buffers.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: b.raw().as_entire_binding(),
            });
        }
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        let encoder = pending.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(entry),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
    }

    /// Waits until every submitted dispatch has finished (for benchmarks' timings).
    pub fn synchronize(&self) {
        self.flush();
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("the GPU finished its work");
    }

    /// Frees the pooled buffers (for a program that is done with the GPU for a while).
    pub fn clear_pool(&self) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.staging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Shapes and indices travel as `u32`: larger values cannot be addressed by a shader.
pub fn u32_of(v: usize) -> u32 {
    u32::try_from(v).expect("sizes and indices on the GPU fit in 32 bits")
}
