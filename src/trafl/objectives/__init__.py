"""trafl.objectives"""
