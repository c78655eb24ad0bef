"""diffusers' UNet2DModel as the reference for models/unet2d (tests/test_unet2d.cpp).

usage: unet2d_diffusers.py make CONFIG.json OUTDIR SEED BATCH
  Builds UNet2DModel(**config) with PyTorch's default init (seeded; GroupNorm affine parameters moved
  off 1/0), saves it with save_pretrained to OUTDIR/model (config.json + diffusion_pytorch_model.safetensors),
  writes the same weights under the older attention key names (query/key/value/proj_attn) to
  OUTDIR/legacy/, and OUTDIR/ref.safetensors: x, g (NCHW), t (I64), out = model(x, t).sample, grad_x and
  grad.<name> for every parameter of loss = sum(out * g); __metadata__ num_parameters.
usage: unet2d_diffusers.py load DIR OUT.txt
  UNet2DModel.from_pretrained(DIR) (or DIR/unet) and DDPMPipeline.from_pretrained(DIR) with strict keys:
  writes num_parameters to OUT.txt.
usage: unet2d_diffusers.py pipeline CONFIG.json OUTDIR SEED
  DDPMPipeline(UNet2DModel(**config) with random weights, DDPMScheduler(fixed_large, clip_sample)).save_pretrained(OUTDIR).
usage: unet2d_diffusers.py pipeline_run DIR IN.safetensors OUT.safetensors
  DDPMPipeline.from_pretrained(DIR)'s loop (unet(x, t).sample, scheduler.step) over IN's "steps" (metadata)
  from IN's x_T with IN's noise [S, B, C, H, W] as each step's variance noise; OUT: xs [S, B, C, H, W], every x_t.
Exit 77 when diffusers is not installed.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import torch  # noqa: E402

import diffusers_ref  # noqa: E402,F401  (exits 77 without diffusers)
from diffusers import DDPMPipeline, UNet2DModel  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

LEGACY = {".to_q.": ".query.", ".to_k.": ".key.", ".to_v.": ".value.", ".to_out.0.": ".proj_attn."}


def make(cfg_path, out, seed, batch):
    cfg = json.load(open(cfg_path))
    torch.manual_seed(seed)
    model = UNet2DModel(**cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    model.eval()
    model.save_pretrained(os.path.join(out, "model"), safe_serialization=True)
    legacy = {}
    for k, v in model.state_dict().items():
        for new, old in LEGACY.items():
            k = k.replace(new, old)
        legacy[k] = v.contiguous()
    os.makedirs(os.path.join(out, "legacy"), exist_ok=True)
    save_file(legacy, os.path.join(out, "legacy", "diffusion_pytorch_model.safetensors"))
    json.dump(dict(model.config), open(os.path.join(out, "legacy", "config.json"), "w"))
    s = cfg.get("sample_size", 32)
    x = torch.randn(batch, cfg.get("in_channels", 3), s, s, requires_grad=True)
    t = torch.tensor([999] + [int(v) for v in torch.randint(0, 1000, (batch - 1,))], dtype=torch.int64)
    out_t = model(x, t).sample
    g = torch.randn_like(out_t)
    (out_t * g).sum().backward()
    ref = {"x": x.detach(), "g": g, "t": t, "out": out_t.detach(), "grad_x": x.grad}
    for name, p in model.named_parameters():
        ref["grad." + name] = p.grad
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(out, "ref.safetensors"),
              metadata={"num_parameters": str(model.num_parameters())})


def load(path):
    unet_dir = os.path.join(path, "unet") if os.path.isdir(os.path.join(path, "unet")) else path
    # low_cpu_mem_usage=False: missing or unexpected keys raise instead of being initialised.
    model = UNet2DModel.from_pretrained(unet_dir, low_cpu_mem_usage=False, local_files_only=True)
    with open(os.path.join(unet_dir, "config.json")) as f:
        json.load(f)
    from safetensors.torch import load_file
    sd = load_file(os.path.join(unet_dir, "diffusion_pytorch_model.safetensors"))
    model.load_state_dict(sd, strict=True)
    if os.path.exists(os.path.join(path, "model_index.json")):
        pipe = DDPMPipeline.from_pretrained(path, local_files_only=True)
        assert type(pipe.scheduler).__name__ == "DDPMScheduler"
    with open(sys.argv[3], "w") as f:
        f.write(str(model.num_parameters()))


def random_model(cfg, seed):
    torch.manual_seed(seed)
    model = UNet2DModel(**cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.2 * torch.randn_like(p))
    return model.eval()


def pipeline(cfg_path, out, seed):
    from diffusers import DDPMScheduler
    model = random_model(json.load(open(cfg_path)), seed)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", variance_type="fixed_large",
                          clip_sample=True)
    DDPMPipeline(unet=model, scheduler=sched).save_pretrained(out, safe_serialization=True)


def pipeline_run(path, inp, outp):
    from safetensors import safe_open
    import diffusers.schedulers.scheduling_ddpm as ddpm_module
    with safe_open(inp, "pt") as f:
        x = f.get_tensor("x")
        noise = f.get_tensor("noise")
        steps = int(f.metadata()["steps"])
    pipe = DDPMPipeline.from_pretrained(path, local_files_only=True)
    s = pipe.scheduler
    s.set_timesteps(steps)
    xs = []
    with torch.no_grad():
        for i, t in enumerate(s.timesteps):
            eps = pipe.unet(x, t).sample
            ddpm_module.randn_tensor = lambda *a, _n=noise[i], **k: _n
            x = s.step(eps, t, x).prev_sample
            xs.append(x)
    save_file({"xs": torch.stack(xs).contiguous(), "timesteps": s.timesteps.clone()}, outp)


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1] == "load":
        load(sys.argv[2])
    elif sys.argv[1] == "pipeline":
        pipeline(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif sys.argv[1] == "pipeline_run":
        pipeline_run(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("unknown mode " + sys.argv[1])
