export * from './address';
export * from './ports';
export * from './permutation';
export * from './target-set';
