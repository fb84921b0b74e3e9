"""trafl.train"""
