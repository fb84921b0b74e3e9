"""trafl.likelihood"""
