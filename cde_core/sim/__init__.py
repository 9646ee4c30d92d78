"""Robot manipulation pairs from Meta-World's own scripted policies (rendered with MuJoCo on the CPU)."""
