"""trafl.sft"""
