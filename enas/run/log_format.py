"""The log lines of the original scripts (ENAS format), one function per line kind."""


def child_step(epoch, step, loss, lr, grad_norm, correct, batch_size, minutes):
    return (
        f"epoch = {epoch:<6d}ch_step = {step:<6d} loss = {loss:<8.6f}   lr = {lr:<8.4f} "
        f"|g| = {grad_norm:<8.4f} tr_acc = {correct:<3d}/{batch_size:>3d}   mins = {minutes:<10.2f}"
    )


def controller_step(step, loss, entropy, lr, grad_norm, accuracy, baseline, minutes):
    return (
        f"ctrl_step = {step:<6d} loss = {loss:<7.3f} ent = {entropy:<5.2f}   lr = {lr:<6.4f}   "
        f"|g| = {grad_norm:<8.4f} acc = {accuracy:<6.4f}   bl = {baseline:<5.2f}  mins = {minutes:<.2f}"
    )


def eval_block(step, split, correct, total):
    """``Eval at STEP`` / ``Test Num examples:  10000`` / ``test_accuracy: 0.9622``."""
    return [
        f"Eval at {step}",
        f"{split.capitalize()} Num examples:  {total}",
        f"{split}_accuracy: {correct / max(total, 1):<6.4f}",
    ]


def sampled_arc(normal_cell, reduce_cell, val_acc):
    """Block printed per architecture after ``Here are 10 architectures``."""
    return [str(normal_cell), str(reduce_cell), f"val_acc = {val_acc:<6.4f}", "-" * 80]
