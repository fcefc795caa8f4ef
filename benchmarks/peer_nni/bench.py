#!/usr/bin/env python
"""Peer benchmark: Microsoft NNI 3.0 ENAS *micro* (cell) search space, CPU throughput.

Measures, with torch.set_num_threads(2):

  nni_random      NNI ENAS supernet (ENAS strategy's mutate_model), a fresh uniformly
                  random arc each step (resample() of every supernet module), then
                  forward + backward + SGD step.  -> child-training throughput.
  nni_controller  same, but each step's arc comes from NNI's ENAS controller
                  (TuningTrajectoryGenerator + default PPO/LSTM policy, eval mode, no_grad),
                  i.e. exactly what EnasLightningModule.training_step does for a train batch.
  nni_fixed       same supernet, ONE fixed arc set once (no per-step sampling).
  frozen_child    ENAS space .freeze(fixed arc): a plain fixed nn.Module network
                  (no supernet wrappers, loose-end concat), same fixed arc.
  controller      controller cost alone: next_sample(), send_reward(), and one NNI
                  controller update (policy.update x update_times on a full replay
                  buffer of batches_per_update trajectories, NNI defaults), amortised.

Each training mode: `--warmup` untimed steps then `--steps` timed steps, repeated
`--repeats` times; images/s = batch*steps / (sum of step times). The machine may be
shared: every step measures the CPU other processes used meanwhile (/proc/stat minus own
CPU time); a step during which others used > --max-others cores is discarded and redone
(same arc) after waiting for a quiet machine. Controller blocks are gated the same way.

Rerun:  VENV/bin/python peer_nni_bench.py --input 32x32x3
        VENV/bin/python peer_nni_bench.py --input 28x28x1
"""
import argparse
import json
import os
import platform
import random
import statistics
import time
import warnings

warnings.filterwarnings('ignore')

import torch
import torch.nn as nn

p = argparse.ArgumentParser()
p.add_argument('--input', default='32x32x3', choices=['32x32x3', '28x28x1'])
p.add_argument('--num-cells', type=int, default=8,
               help='NNI NDS num_cells; 8 = 3 stages [2 normal],[reduce+2 normal],[reduce+2 normal] '
                    '= ENAS paper num_layers=6 (6 normal + 2 reduction cells)')
p.add_argument('--width', type=int, default=20)
p.add_argument('--batch', type=int, default=128)
p.add_argument('--classes', type=int, default=10)
p.add_argument('--warmup', type=int, default=3)
p.add_argument('--steps', type=int, default=30)
p.add_argument('--repeats', type=int, default=3)
p.add_argument('--threads', type=int, default=2)
p.add_argument('--modes', default='nni_random,nni_controller,nni_fixed,frozen_child,controller')
p.add_argument('--channels-last', action='store_true', help='use channels_last memory format (not NNI default)')
p.add_argument('--max-others', type=float, default=0.15, help='cores used by other processes during a step (or controller block) above which it is discarded and redone')
p.add_argument('--max-repeat-s', type=float, default=1200.0, help='give up a repeat after this long')
p.add_argument('--max-attempts', type=int, default=6, help='controller mode: attempts to get --repeats clean repeats')
p.add_argument('--quiet-wait', type=float, default=300.0, help='max seconds to wait for a quiet machine before a repeat')
p.add_argument('--seed', type=int, default=0)
p.add_argument('--out', default=None, help='JSON results file')
args = p.parse_args()

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

import nni  # noqa: E402
from nni.mutable import CategoricalMultiple  # noqa: E402
from nni.nas.hub.pytorch import ENAS  # noqa: E402
from nni.nas.nn.pytorch import MutableConv2d  # noqa: E402
from nni.nas.strategy import ENAS as ENASStrategy  # noqa: E402
from nni.nas.oneshot.pytorch.supermodule.base import BaseSuperNetModule  # noqa: E402
from nni.nas.strategy._rl_impl import TuningTrajectoryGenerator  # noqa: E402
from tianshou.data import ReplayBuffer  # noqa: E402

H, W, CIN = {'32x32x3': (32, 32, 3), '28x28x1': (28, 28, 1)}[args.input]
OPS = ENAS.ENAS_OPS  # skip_connect, sep_conv_3x3, sep_conv_5x5, avg_pool_3x3, max_pool_3x3

# ---------------------------------------------------------------- load monitoring
CLK = os.sysconf('SC_CLK_TCK')


def _busy_jiffies():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v[:8]) - idle


class LoadMeter:
    """Wall time, own CPU time, and CPU time used by everything else on the machine."""

    def __enter__(self):
        self.w0 = time.perf_counter()
        t = os.times()
        self.c0 = t.user + t.system
        self.b0 = _busy_jiffies()
        return self

    def __exit__(self, *a):
        self.wall = time.perf_counter() - self.w0
        t = os.times()
        self.own = t.user + t.system - self.c0
        busy = (_busy_jiffies() - self.b0) / CLK
        self.others_cores = max(0.0, busy - self.own) / self.wall
        self.own_cores = self.own / self.wall


def wait_quiet(limit):
    """Wait (<= limit s) until other processes use < max_others cores over a 1 s window."""
    t0 = time.time()
    while True:
        with LoadMeter() as m:
            time.sleep(1.0)
        if m.others_cores < args.max_others or time.time() - t0 > limit:
            return time.time() - t0, m.others_cores


# ---------------------------------------------------------------- model construction
def fix_stem(model):
    """For 28x28x1 input replace the 3-channel CIFAR stem conv by a 1-channel one (same 3*C outputs)."""
    if CIN != 3:
        old = model.stem[0]
        model.stem[0] = MutableConv2d(CIN, old.out_channels, 3, padding=1, bias=False)
    return model


def make_space():
    return fix_stem(ENAS(width=args.width, num_cells=args.num_cells, dataset='cifar'))


def make_supernet():
    space = make_space()
    strategy = ENASStrategy(reward_metric_name='val_acc')
    sn = strategy.mutate_model(space)  # in place: PathSamplingCell + Mixed* ops (shared weights)
    mods = [m for m in sn.modules() if isinstance(m, BaseSuperNetModule)]
    return sn, mods, strategy


def balanced_fixed_arc():
    """Deterministic arc: each of the 5 ops appears exactly twice per cell (the expectation of
    uniform sampling); 3 loose-end nodes (uniform sampling expects ~2.5)."""
    inputs = {2: (1, 0), 3: (2, 1), 4: (2, 0), 5: (3, 1), 6: (1, 0)}
    arc = {}
    for cell in ('normal', 'reduce'):
        for i in range(2, 7):
            for k in range(2):
                arc[f'{cell}/op_{i}_{k}'] = OPS[(2 * (i - 2) + k) % 5]
                arc[f'{cell}/input_{i}_{k}'] = [inputs[i][k]]
    return arc


def random_arc(space_dict, rng):
    s = {}
    for k, v in space_dict.items():
        s[k] = [rng.choice(list(v.values))] if isinstance(v, CategoricalMultiple) else rng.choice(list(v.values))
    return s


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------- data / step
g = torch.Generator().manual_seed(args.seed)
DATA = [(torch.randn(args.batch, CIN, H, W, generator=g), torch.randint(0, args.classes, (args.batch,), generator=g))
        for _ in range(4)]
if args.channels_last:
    DATA = [(x.contiguous(memory_format=torch.channels_last), y) for x, y in DATA]
LOSS = nn.CrossEntropyLoss()


def make_opt(model):
    # ENAS child defaults: SGD nesterov momentum 0.9, lr 0.05, l2 1e-4, grad clip 5.0
    return torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)


def train_step(model, opt, i):
    x, y = DATA[i % len(DATA)]
    out = model(x)
    loss = LOSS(out, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    opt.step()
    return loss.item()


def run_training_mode(mode):
    rng = random.Random(args.seed)
    gen = None
    pre_step = None  # called as pre_step(k) before the k-th step of a repeat
    if mode == 'frozen_child':
        model = fix_stem(ENAS(width=args.width, num_cells=args.num_cells, dataset='cifar').freeze(balanced_fixed_arc()))
    else:
        model, mods, _ = make_supernet()
        space_dict = model.simplify()
        if mode == 'nni_fixed':
            arc = balanced_fixed_arc()
            for m in mods:
                m.resample(memo=arc)
        elif mode == 'nni_random':
            # the same seeded arc list in every repeat; a discarded (contended) step is redone with its arc
            warm_arcs = [random_arc(space_dict, rng) for _ in range(args.warmup)]
            arcs = [random_arc(space_dict, rng) for _ in range(args.steps)]

            def pre_step(k, warm=False):
                arc = dict((warm_arcs if warm else arcs)[k])  # building the dict is trivial; resample is timed
                for m in mods:
                    m.resample(memo=arc)
        elif mode == 'nni_controller':
            gen = TuningTrajectoryGenerator(model)  # NNI default policy: PPO, LSTM(64) actor+critic
            gen.policy.eval()

            def pre_step(k, warm=False):
                with torch.no_grad():
                    arc = gen.next_sample()
                for m in mods:
                    m.resample(memo=arc)
        else:
            raise ValueError(mode)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = make_opt(model)
    res = {'mode': mode, 'params': n_params(model), 'repeats': []}
    for rep in range(args.repeats):
        waited, _ = wait_quiet(args.quiet_wait)
        for i in range(args.warmup):
            if pre_step:
                pre_step(i, warm=True)
            train_step(model, opt, i)
        step_times, sample_times, losses, others = [], [], [], []
        discarded, t_rep0 = 0, time.time()
        while len(step_times) < args.steps and time.time() - t_rep0 < args.max_repeat_s:
            k = len(step_times)
            with LoadMeter() as lm:
                t0 = time.perf_counter()
                if pre_step:
                    pre_step(k)
                t1 = time.perf_counter()
                loss = train_step(model, opt, k)
                t2 = time.perf_counter()
            if lm.others_cores < args.max_others:
                step_times.append(t2 - t0)
                sample_times.append(t1 - t0)
                losses.append(loss)
                others.append(lm.others_cores)
            else:
                discarded += 1
                wait_quiet(args.quiet_wait)
        r = {
            'repeat': rep + 1,
            'clean_steps': len(step_times),
            'discarded_contended_steps': discarded,
            'images_per_s': args.batch * len(step_times) / sum(step_times),
            'timed_s': sum(step_times),
            'step_s_median': statistics.median(step_times),
            'step_s_min': min(step_times),
            'step_s_max': max(step_times),
            'sample_s_median': statistics.median(sample_times),
            'others_cores_mean_clean_steps': statistics.mean(others),
            'waited_for_quiet_s': waited,
            'complete': len(step_times) >= args.steps,
            'last_loss': losses[-1],
        }
        res['repeats'].append(r)
        print(f"  {mode:15s} repeat {rep + 1}: {r['images_per_s']:7.1f} img/s  step med {r['step_s_median']:.3f}s "
              f"(min {r['step_s_min']:.3f} max {r['step_s_max']:.3f})  arc-sampling {1000 * r['sample_s_median']:.1f} ms  "
              f"clean steps {r['clean_steps']}  discarded {discarded}  others(clean) {r['others_cores_mean_clean_steps']:.3f} cores",
              flush=True)
    use = res['repeats']
    res['images_per_s_median'] = statistics.median(r['images_per_s'] for r in use)
    res['images_per_s_all'] = [round(r['images_per_s'], 2) for r in use]
    res['step_s_median'] = statistics.median(r['step_s_median'] for r in use)
    res['sample_ms_median'] = 1000 * statistics.median(r['sample_s_median'] for r in use)
    res['n_clean'] = sum(1 for r in use if r['complete'])
    return res


def run_controller_mode():
    """NNI ENAS controller alone (no child training): sampling, reward, and the update that
    EnasLightningModule performs every `batches_per_update` trajectories."""
    sn, mods, strategy = make_supernet()
    gen = TuningTrajectoryGenerator(sn)
    policy = gen.policy
    bpu = strategy.batches_per_update  # 20
    upd = dict(strategy.update_kwargs)  # {'batch_size': 32, 'repeat': 5, 'update_times': 5}
    res = {'mode': 'controller', 'decisions_per_arc': gen.expected_trajectory_length,
           'batches_per_update': bpu, 'update_kwargs': upd,
           'policy_params': n_params(policy), 'repeats': []}
    attempts = 0
    while sum(1 for r in res['repeats'] if r['clean']) < args.repeats and attempts < args.max_attempts:
        attempts += 1
        waited, _ = wait_quiet(args.quiet_wait)
        buf = ReplayBuffer(gen.expected_trajectory_length * bpu)
        samp_eval, samp_train, rew_t = [], [], []
        with LoadMeter() as lm:
            # train-batch sampling (policy.eval) like EnasLightningModule for 'train' batches
            policy.eval()
            for _ in range(args.steps):
                t0 = time.perf_counter()
                with torch.no_grad():
                    gen.next_sample()
                samp_eval.append(time.perf_counter() - t0)
            # val-batch sampling (policy.train) + send_reward; fill one full update's worth
            policy.train()
            for _ in range(bpu):
                t0 = time.perf_counter()
                with torch.no_grad():
                    gen.next_sample()
                t1 = time.perf_counter()
                traj = gen.send_reward(random.random())
                buf.update(traj)
                t2 = time.perf_counter()
                samp_train.append(t1 - t0)
                rew_t.append(t2 - t1)
            t0 = time.perf_counter()
            policy.train()
            for _ in range(upd.get('update_times', 1)):
                policy.update(0, buf, **upd)
            t_update = time.perf_counter() - t0
        per_step = statistics.median(samp_eval) + statistics.median(samp_train) + statistics.median(rew_t) + t_update / bpu
        r = {'attempt': attempts,
             'sample_ms_median_eval': 1000 * statistics.median(samp_eval),
             'sample_ms_median_train': 1000 * statistics.median(samp_train),
             'send_reward_ms_median': 1000 * statistics.median(rew_t),
             'update_s': t_update,
             'controller_ms_per_search_step': 1000 * per_step,
             'own_cores': lm.own_cores, 'others_cores': lm.others_cores,
             'waited_for_quiet_s': waited, 'clean': lm.others_cores < args.max_others}
        res['repeats'].append(r)
        print(f"  controller attempt {attempts}: sample(eval) {r['sample_ms_median_eval']:.1f} ms  "
              f"sample(train) {r['sample_ms_median_train']:.1f} ms  send_reward {r['send_reward_ms_median']:.1f} ms  "
              f"update({upd.get('update_times', 1)}x on {bpu} traj) {r['update_s']:.2f} s  "
              f"=> {r['controller_ms_per_search_step']:.1f} ms per search step  others {r['others_cores']:.2f} cores "
              f"{'CLEAN' if r['clean'] else 'CONTENDED'}", flush=True)
    clean = [r for r in res['repeats'] if r['clean']] or res['repeats']
    for k in ('sample_ms_median_eval', 'sample_ms_median_train', 'send_reward_ms_median', 'update_s',
              'controller_ms_per_search_step'):
        res[k + '_med'] = statistics.median(r[k] for r in clean)
    res['n_clean'] = sum(1 for r in res['repeats'] if r['clean'])
    return res


def versions():
    import numpy
    import pytorch_lightning
    import tianshou
    import gym
    cpu = ''
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
    except Exception:
        pass
    return {'python': platform.python_version(), 'torch': torch.__version__, 'nni': nni.__version__,
            'pytorch_lightning': pytorch_lightning.__version__, 'tianshou': tianshou.__version__,
            'gym': gym.__version__, 'numpy': numpy.__version__, 'cpu': cpu, 'nproc': os.cpu_count(),
            'torch_threads': torch.get_num_threads(), 'mkldnn': torch.backends.mkldnn.is_available()}


def main():
    info = versions()
    cfg = vars(args).copy()
    arc = balanced_fixed_arc()
    print('versions:', json.dumps(info))
    print('config  :', json.dumps(cfg))
    sn, mods, _ = make_supernet()
    print(f'supernet params {n_params(sn):,}  supernet modules {len(mods)}  choices {len(sn.simplify())}')
    results = {'versions': info, 'config': cfg, 'fixed_arc': arc, 'supernet_params': n_params(sn), 'modes': {}}
    del sn, mods
    for mode in args.modes.split(','):
        print(f'== {mode}', flush=True)
        results['modes'][mode] = run_controller_mode() if mode == 'controller' else run_training_mode(mode)
    print('\nSUMMARY (median over repeats; images/s = batch*clean_steps/sum(step times); contended steps discarded+redone)')
    for mode, r in results['modes'].items():
        if mode == 'controller':
            print(f"  controller      : {r['controller_ms_per_search_step_med']:.1f} ms per ENAS search step "
                  f"(sample eval {r['sample_ms_median_eval_med']:.1f} ms, update {r['update_s_med']:.2f} s per "
                  f"{r['batches_per_update']} steps)  clean {r['n_clean']}")
        else:
            print(f"  {mode:15s} : {r['images_per_s_median']:7.1f} img/s   step {r['step_s_median']:.3f} s   "
                  f"params {r['params']:,}   repeats {r['images_per_s_all']}  complete {r['n_clean']}/{len(r['repeats'])}")
    out = args.out or f"results_{args.input}_c{args.num_cells}{'_cl' if args.channels_last else ''}.json"
    with open(out, 'w') as f:
        json.dump(results, f, indent=1)
    print('wrote', out)


if __name__ == '__main__':
    main()
