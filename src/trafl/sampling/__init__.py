"""trafl.sampling"""
