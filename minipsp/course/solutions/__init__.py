"""Reference solutions of the course's exercises, one module per chapter (chNN.py).

Open the chapter's file when you are stuck, after you have tried: the check in the notebook tells you
what it expected and what your code gave, which is usually enough to find the mistake.
"""
