"""trafl.rewards"""
