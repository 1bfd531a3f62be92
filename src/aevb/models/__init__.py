"""The five models, each in its own file, written as the tutorial derives them; `registry` finds
them by name, `base` is what they share, `nets` their building blocks."""
