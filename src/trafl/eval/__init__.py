"""trafl.eval"""
